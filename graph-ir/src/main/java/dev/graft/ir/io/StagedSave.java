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
 *   put(W1') ─► .OUT.data.XXXX.tmp @0      W1' := External(tmp@0)
 *   put(W2') ─► .OUT.data.XXXX.tmp @4096·k W2' := External(tmp@4096·k)
 *   (ORT may open the model now: its session file points at the staged file)
 *   commit(model) ─► unchanged tensors appended, OUT written, tmp ─move─► OUT.data
 * </pre>
 *
 * Closing without a commit deletes the staged file; the target is never touched before the
 * commit. Staged tensors keep their data after the commit (they are mapped before the move).
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
  private long end;
  private boolean committed;

  private StagedSave(Path target, SaveOptions options, Path file, FileChannel channel) {
    this.target = target;
    this.options = options;
    this.dir = file.getParent();
    this.file = file;
    this.channel = channel;
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
    checkState(!committed, "This staged save of %s is committed; begin another", target);
    ByteBuffer bytes = t.rawData();
    long length = bytes.remaining();
    int align = length >= PAGE_ALIGNED_FROM ? PAGE : ALIGNMENT;
    long offset = (end + align - 1) / align * align;
    try {
      channel.position(offset);
      while (bytes.hasRemaining()) channel.write(bytes);
    } catch (IOException e) {
      throw new UncheckedIOException(
          "Cannot write tensor '" + t.name() + "' to " + file + ": " + e.getMessage()
              + ". Free disk space there.",
          e);
    }
    end = offset + length;
    return external(t.name(), t.dataType(), t.dims(), offset, length, t.docString(), t.extras());
  }

  /**
   * A region of the staged data file reserved for one tensor and mapped for writing, and the
   * tensor that reads it back: whoever computes the tensor (ORT, given the buffer as its output)
   * writes it straight into the file's pages, with no copy on the heap and no write call.
   */
  public record Slot(ExternalTensor tensor, ByteBuffer buffer) {}

  /**
   * Reserves room for a tensor of {@code type} and {@code dims} at the end of the staged file, as
   * {@link #put} would place it, and maps it for writing (the file grows to hold it). The tensor
   * reads what the buffer holds once it is written.
   */
  public Slot reserve(String name, dev.graft.ir.DataType type, long[] dims) {
    checkState(!committed, "This staged save of %s is committed; begin another", target);
    long count = 1;
    for (long d : dims) count = Math.multiplyExact(count, d);
    checkArgument(type.bits() > 0 && type.bits() % 8 == 0, "Cannot reserve %s '%s': not whole bytes", type, name);
    long length = Math.multiplyExact(count, (long) type.bits() / 8);
    int align = length >= PAGE_ALIGNED_FROM ? PAGE : ALIGNMENT;
    long offset = (end + align - 1) / align * align;
    ByteBuffer buffer;
    try {
      buffer = channel.map(FileChannel.MapMode.READ_WRITE, offset, length);
    } catch (IOException e) {
      throw new UncheckedIOException(
          "Cannot make room for tensor '" + name + "' in " + file + ": " + e.getMessage() + ". Free disk space there.",
          e);
    }
    end = offset + length;
    return new Slot(external(name, type, dims, offset, length, null, null), buffer);
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

  /** Closes the staged file; without a commit (or after a failed one) it is deleted. */
  @Override
  public void close() {
    try {
      channel.close();
    } catch (IOException ignored) {
      // the file is deleted next, or was committed and forced already
    }
    AtomicFiles.deleteQuietly(file); // after a commit it was moved away: nothing to delete
  }
}
