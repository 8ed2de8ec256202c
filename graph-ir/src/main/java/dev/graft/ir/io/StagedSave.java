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
import java.nio.file.Files;
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
 * Large tensors (whole blocks of an {@link #alignedBuffer}, or copied) go to the file with direct
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
  /** The same file opened for direct I/O (O_DIRECT), or null where the file system refuses it. */
  private volatile FileChannel direct;
  private long end;
  private boolean committed;

  private StagedSave(Path target, SaveOptions options, Path file, FileChannel channel) {
    this.target = target;
    this.options = options;
    this.dir = file.getParent();
    this.file = file;
    this.channel = channel;
    this.direct = openDirect(file);
  }

  /**
   * Alignment of direct I/O: the buffer's address, the file offset and the length written
   * directly are multiples of it (the file system's block size, at least a page).
   */
  public static final int DIRECT_ALIGNMENT = PAGE;

  /**
   * A direct buffer of {@code bytes} bytes whose address is aligned for direct I/O: a tensor
   * computed into it is written by {@link #put(String, dev.graft.ir.DataType, long[], ByteBuffer)}
   * past the page cache.
   */
  public static ByteBuffer alignedBuffer(int bytes) {
    checkArgument(bytes >= 0, "A buffer of %s bytes", bytes);
    // alignedSlice rounds both ends inward: room for a whole number of blocks past the start.
    int blocks = Math.toIntExact(((long) bytes + DIRECT_ALIGNMENT - 1) / DIRECT_ALIGNMENT);
    ByteBuffer b =
        ByteBuffer.allocateDirect(Math.toIntExact((blocks + 1L) * DIRECT_ALIGNMENT)).alignedSlice(DIRECT_ALIGNMENT);
    return b.limit(bytes).slice();
  }

  /**
   * Direct I/O where the file system has it: the large tensors of a staged save are written once
   * and read back by nobody soon, so they go to the disk without first being copied into the
   * page cache (whose pages a large write must allocate; on a memory-pressed or virtualised
   * machine that allocation, not the disk, bounds a buffered write, by up to ten times). The
   * commit's force makes them durable with the rest.
   */
  private static FileChannel openDirect(Path file) {
    if (Boolean.getBoolean("graft.io.noDirect")) return null;
    try {
      if (Files.getFileStore(file).getBlockSize() > DIRECT_ALIGNMENT) return null;
      return FileChannel.open(file, StandardOpenOption.WRITE, com.sun.nio.file.ExtendedOpenOption.DIRECT);
    } catch (IOException | UnsupportedOperationException e) {
      return null; // tmpfs and some others: buffered writes
    }
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
   * page cache when {@code data} is an {@link #alignedBuffer} and the file system allows it.
   * Positional writes: several may run at once on other threads, each to its own tensor.
   */
  public void write(ExternalTensor placed, ByteBuffer data) {
    checkArgument(holds(placed), "Tensor '%s' was not placed in this staged save of %s", placed.name(), target);
    checkArgument(
        data.remaining() == placed.length(),
        "Tensor '%s' takes %s bytes; %s given", placed.name(), placed.length(), data.remaining());
    ByteBuffer bytes = data.duplicate();
    long length = bytes.remaining();
    try {
      long at = placed.offset();
      int aligned = (int) (length - length % DIRECT_ALIGNMENT);
      FileChannel d = direct;
      if (d != null
          && aligned > 0
          && at % DIRECT_ALIGNMENT == 0
          && bytes.isDirect()
          && bytes.alignmentOffset(bytes.position(), DIRECT_ALIGNMENT) == 0) {
        ByteBuffer head = bytes.slice().limit(aligned);
        try {
          while (head.hasRemaining()) at += d.write(head, at);
        } catch (IOException refused) {
          // A file system that opened the file for direct I/O but refuses this write: buffered
          // from here on, from where the direct write stopped.
          closeDirect();
        }
        bytes.position(bytes.position() + head.position());
      }
      while (bytes.hasRemaining()) at += channel.write(bytes, at);
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
   * Copies {@code length} bytes of {@code src} from byte {@code from} into the staged file at
   * {@code at} past the page cache (read into a reused aligned buffer, written directly; a last
   * partial block buffered): the unchanged weights of a merged export. Returns false, having
   * written nothing, where direct I/O is off or {@code at} is not aligned for it.
   */
  boolean copyDirect(FileChannel src, long from, long length, long at) throws IOException {
    if (direct == null || at % DIRECT_ALIGNMENT != 0) return false;
    copy(src, from, length, at);
    return true;
  }

  /**
   * Copies the bytes of {@code from}, an external tensor whose file holds them, into the room
   * {@code placed} (from {@link #place}) took in this save: a weight the export keeps as it is,
   * copied while the merged ones are computed. Past the page cache where the file system allows.
   * Runs on one thread at a time (the copy buffer is shared).
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
      copy(src, from.offset(), from.length(), placed.offset());
    } catch (IOException e) {
      throw new UncheckedIOException(
          "Cannot copy tensor '" + from.name() + "' from " + from.file() + " to " + file + ": " + e.getMessage(), e);
    }
  }

  private synchronized void copy(FileChannel src, long from, long length, long at) throws IOException {
    if (chunk == null) chunk = alignedBuffer(COPY_CHUNK);
    long done = 0;
    while (done < length) {
      int n = (int) Math.min(COPY_CHUNK, length - done);
      ByteBuffer b = chunk.duplicate().clear().limit(n);
      while (b.hasRemaining()) {
        if (src.read(b, from + done + b.position()) < 0) {
          throw new IOException("short read from " + src + " at byte " + (from + done + b.position()));
        }
      }
      b.flip();
      int aligned = n - n % DIRECT_ALIGNMENT;
      long pos = at + done;
      FileChannel d = direct;
      if (d != null && aligned > 0 && pos % DIRECT_ALIGNMENT == 0) {
        ByteBuffer head = b.duplicate().limit(aligned);
        try {
          while (head.hasRemaining()) pos += d.write(head, pos);
        } catch (IOException refused) {
          closeDirect(); // buffered from here on
        }
        b.position(head.position());
      }
      while (b.hasRemaining()) pos += channel.write(b, pos);
      done += n;
    }
  }

  /** The aligned buffer {@link #copyDirect} copies through, made on first use. */
  private ByteBuffer chunk;

  private static final int COPY_CHUNK = 8 << 20;

  private synchronized void closeDirect() {
    if (direct == null) return;
    try {
      direct.close();
    } catch (IOException ignored) {
      // written data is in the file; the commit's force makes it durable
    }
    direct = null;
  }

  /** Whether large tensors are written with direct I/O (tests and reports). */
  public boolean writesDirect() {
    return direct != null;
  }

  /** Closes the staged file; without a commit (or after a failed one) it is deleted. */
  @Override
  public void close() {
    closeDirect();
    try {
      channel.close();
    } catch (IOException ignored) {
      // the file is deleted next, or was committed and forced already
    }
    AtomicFiles.deleteQuietly(file); // after a commit it was moved away: nothing to delete
  }
}
