package dev.graft.ir.io;

import static com.google.common.base.Preconditions.checkArgument;
import static com.google.common.base.Preconditions.checkState;

import dev.graft.ir.Model;
import dev.graft.ir.tensor.ExternalTensor;
import dev.graft.ir.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;

/**
 * A save with external data whose data file is begun before the model is finished: tensors
 * computed one at a time (the merged weights of a streaming export) are written into it as soon
 * as they exist, and each is replaced in the model by an {@link ExternalTensor} reading it back,
 * so memory holds one of them at a time. {@link #commit} then writes the model: tensors already
 * in the file stay where they are (a pointer at their offset, no copy), the rest are appended
 * (external ones file to file), and the data file and the model are moved into place as any save
 * moves them. Each byte of the data file is written once.
 *
 * <pre>
 *   put(W1')             ─► .OUT.data.XXXX.tmp @0       W1' := External(tmp@0)   (one positional write)
 *   place(W2') … write   ─► @4096·k, from another thread while the caller computes W3'
 *   place(U) … copy(U)   ─► an unchanged weight copied from its file, also on that thread
 *   commit(model)        ─► the rest appended, OUT written, tmp ─move─► OUT.data
 * </pre>
 *
 * Large tensors (whole blocks of a {@link DirectWrites#alignedBuffer}, or copied) go to the file with direct
 * I/O where the file system has it: written once and read by nobody soon, they need not be
 * copied into the page cache first, whose fresh pages, not the disk, bound a large buffered write
 * on a memory-pressed or virtualised machine (docs/large-models.md has the figures). The
 * commit's force makes everything durable. Closing without a commit deletes the staged file; the
 * target is never touched before the commit. Staged tensors keep their data after the commit
 * (they are mapped before the move).
 */
public final class StagedSave implements AutoCloseable {
  private static final int PAGE = 4096;
  private static final int ALIGNMENT = 64;
  private static final long PAGE_ALIGNED_FROM = 1 << 20;

  private final Path target;
  private final SaveOptions options;
  private final Path dir;
  private final Path file;
  private final FileChannel channel;
  /** Large writes past the page cache, where the file system allows. */
  private final DirectWrites writes;
  private long end;
  private boolean committed;

  private StagedSave(Path target, SaveOptions options, Path file, FileChannel channel) {
    this.target = target;
    this.options = options;
    this.dir = file.getParent();
    this.file = file;
    this.channel = channel;
    this.writes = DirectWrites.open(file, channel);
  }

  /**
   * Begins a save of a model to {@code target} with external data ({@code options} must not be
   * inline): the staged data file is created beside the final data file.
   */
  public static StagedSave begin(Path target, SaveOptions options) {
    checkArgument(
        options.layout() != SaveOptions.Layout.INLINE,
        "A staged save writes external data; %s asks for everything inline",
        options);
    Path t = target.toAbsolutePath().normalize();
    String location = ModelWriter.dataLocation(t, options);
    Path dataTarget = ExternalTensor.resolveInside(t.getParent(), location, "<data file>");
    try {
      Path file = AtomicFiles.createTemp(dataTarget).toAbsolutePath().normalize();
      return new StagedSave(
          t, options, file, FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE));
    } catch (IOException e) {
      throw new UncheckedIOException(
          "Cannot create a temporary data file beside " + dataTarget + ": " + e.getMessage()
              + ". Free disk space there or make the folder writable.",
          e);
    }
  }

  /**
   * Writes {@code t}'s bytes into the staged data file now and returns a tensor that reads them
   * back from there (same name, type, shape, doc string and extras).
   */
  public ExternalTensor put(Tensor t) {
    return put(t.name(), t.dataType(), t.dims(), t.rawData(), t.docString(), t.extras());
  }

  /**
   * Writes {@code bytes} (from its position to its limit; the position is not moved), the data of
   * a tensor of {@code type} and {@code dims}, into the staged data file now and returns the tensor
   * that reads it back: a weight computed into a reused direct buffer (by ORT, in an export) goes
   * to the file with one write and no heap copy. {@link #place} and {@link #write} do the same in
   * two steps.
   */
  public ExternalTensor put(String name, dev.graft.ir.DataType type, long[] dims, ByteBuffer bytes) {
    return put(name, type, dims, bytes, null, null);
  }

  private ExternalTensor put(
      String name, dev.graft.ir.DataType type, long[] dims, ByteBuffer data, String docString, byte[] extras) {
    ExternalTensor placed = place(name, type, dims, data.remaining(), docString, extras);
    write(placed, data);
    return placed;
  }

  /**
   * Makes room at the end of the staged file for a tensor of {@code type} and {@code dims} and
   * returns the tensor that will read it; its bytes go there with {@link #write}, which may run on
   * another thread (a merged export writes one weight while ORT computes the next). Nothing may
   * read the tensor before its write returned.
   */
  public ExternalTensor place(String name, dev.graft.ir.DataType type, long[] dims) {
    checkArgument(type.bits() > 0 && type.bits() % 8 == 0, "Cannot place %s '%s': not whole bytes", type, name);
    long count = 1;
    for (long d : dims) count = Math.multiplyExact(count, d);
    return place(name, type, dims, Math.multiplyExact(count, (long) type.bits() / 8), null, null);
  }

  /** As {@link #place(String, dev.graft.ir.DataType, long[])}, for a tensor like {@code like} (its name, doc string and extras too). */
  public ExternalTensor place(Tensor like) {
    return place(like.name(), like.dataType(), like.dims(), like.byteSize(), like.docString(), like.extras());
  }

  private synchronized ExternalTensor place(
      String name, dev.graft.ir.DataType type, long[] dims, long length, String docString, byte[] extras) {
    checkState(!committed, "This staged save of %s is committed; begin another", target);
    long count = 1;
    for (long d : dims) count = Math.multiplyExact(count, d);
    checkArgument(
        type.bits() <= 0 || count * type.bits() / 8 == length,
        "Tensor '%s' of %s %s takes %s bytes; %s given",
        name, type, java.util.Arrays.toString(dims), type.bits() <= 0 ? "?" : count * type.bits() / 8, length);
    int align = length >= PAGE_ALIGNED_FROM ? PAGE : ALIGNMENT;
    long offset = (end + align - 1) / align * align;
    end = offset + length;
    return external(name, type, dims, offset, length, docString, extras);
  }

  /**
   * Writes the bytes of {@code placed}, a tensor {@link #place}d in this save, from {@code data}
   * (its position to its limit, exactly the tensor's length; the position is not moved): past the
   * page cache when {@code data} is a {@link DirectWrites#alignedBuffer} and the file system allows it.
   * Positional writes: several may run at once on other threads, each to its own tensor.
   */
  public void write(ExternalTensor placed, ByteBuffer data) {
    checkArgument(holds(placed), "Tensor '%s' was not placed in this staged save of %s", placed.name(), target);
    checkArgument(
        data.remaining() == placed.length(),
        "Tensor '%s' takes %s bytes; %s given", placed.name(), placed.length(), data.remaining());
    try {
      writes.write(data, placed.offset());
    } catch (IOException e) {
      throw new UncheckedIOException(
          "Cannot write tensor '" + placed.name() + "' to " + file + ": " + e.getMessage() + ". Free disk space there.",
          e);
    }
  }

  private ExternalTensor external(
      String name,
      dev.graft.ir.DataType type,
      long[] dims,
      long offset,
      long length,
      String docString,
      byte[] extras) {
    String location = file.getFileName().toString();
    return new ExternalTensor(
        name,
        type,
        dims,
        dir,
        location,
        offset,
        length,
        List.of(
            Map.entry("location", location),
            Map.entry("offset", Long.toString(offset)),
            Map.entry("length", Long.toString(length))),
        docString,
        extras);
  }

  /** Bytes staged so far (the end of the last tensor put). */
  public long stagedBytes() {
    return end;
  }

  /**
   * Writes {@code model} to the target: staged tensors are pointed at, the rest appended; then
   * both files are moved into place. Once only.
   */
  public void commit(Model model) {
    checkState(!committed, "This staged save of %s is committed already", target);
    committed = true;
    ModelWriter.write(model, target, options, this, Map.of());
  }

  boolean holds(ExternalTensor t) {
    try {
      return t.file().toAbsolutePath().normalize().equals(file);
    } catch (RuntimeException e) {
      return false;
    }
  }

  Path file() {
    return file;
  }

  FileChannel channel() {
    return channel;
  }

  long end() {
    return end;
  }

  /**
   * Copies the bytes of {@code from}, an external tensor whose file holds them, into the room
   * {@code placed} (from {@link #place}) took in this save: a weight the export keeps as it is,
   * copied while the merged ones are computed. Past the page cache where the file system allows.
   */
  public void copy(ExternalTensor from, ExternalTensor placed) {
    checkArgument(holds(placed), "Tensor '%s' was not placed in this staged save of %s", placed.name(), target);
    checkArgument(
        from.length() == placed.length(),
        "Tensor '%s' holds %s bytes; '%s' has room for %s", from.name(), from.length(), placed.name(), placed.length());
    try (FileChannel src = FileChannel.open(from.file(), StandardOpenOption.READ)) {
      checkArgument(
          src.size() >= from.offset() + from.length(),
          "Tensor '%s' reads bytes %s to %s of %s, which holds %s",
          from.name(), from.offset(), from.offset() + from.length(), from.file(), src.size());
      writes.copy(src, from.offset(), from.length(), placed.offset());
    } catch (IOException e) {
      throw new UncheckedIOException(
          "Cannot copy tensor '" + from.name() + "' from " + from.file() + " to " + file + ": " + e.getMessage(), e);
    }
  }

  /** The direct writes into the staged file, which the commit's copies use too. */
  DirectWrites writes() {
    return writes;
  }

  /** Whether large tensors are written with direct I/O (tests and reports). */
  public boolean writesDirect() {
    return writes.active();
  }

  /** Closes the staged file; without a commit (or after a failed one) it is deleted. */
  @Override
  public void close() {
    writes.close();
    try {
      channel.close();
    } catch (IOException ignored) {
      // the file is deleted next, or was committed and forced already
    }
    AtomicFiles.deleteQuietly(file); // after a commit it was moved away: nothing to delete
  }
}
