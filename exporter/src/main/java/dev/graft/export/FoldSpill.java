package dev.graft.export;

import dev.graft.ir.io.AtomicFiles;
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
import java.util.function.UnaryOperator;

/**
 * Where a streaming export puts each merged weight as soon as ONNX Runtime has computed it: a
 * hidden temporary data file beside the output. The weight is written once and replaced in the
 * model by an {@link ExternalTensor} that reads it back from there, so the export holds one merged
 * weight in memory at a time, however large the model. Verification (ORT opens the export from a
 * file that points here and at the tuned model's data) and the final save (a file-to-file copy)
 * read it from disk. Closing deletes the file.
 *
 * <pre>
 *   fold W1 ─► W1' (heap) ─► spill@0      ─► W1' := External(spill@0)       heap freed
 *   fold W2 ─► W2' (heap) ─► spill@4096·k ─► W2' := External(spill@4096·k)  heap freed
 * </pre>
 */
final class FoldSpill implements UnaryOperator<Tensor>, AutoCloseable {
  private static final int PAGE = 4096;

  private final Path dir;
  private final Path file;
  private final FileChannel channel;
  private long end;

  FoldSpill(Path out) {
    this.dir = out.toAbsolutePath().getParent();
    try {
      this.file = AtomicFiles.createTemp(out.toAbsolutePath().resolveSibling(out.getFileName() + ".folded"));
      this.channel = FileChannel.open(file, StandardOpenOption.WRITE);
    } catch (IOException e) {
      throw new UncheckedIOException(
          "Cannot create a temporary data file for the merged weights beside " + out + ": " + e.getMessage()
              + ". Free disk space there or make the folder writable.",
          e);
    }
  }

  @Override
  public Tensor apply(Tensor t) {
    ByteBuffer bytes = t.rawData();
    long offset = (end + PAGE - 1) / PAGE * PAGE;
    long length = bytes.remaining();
    try {
      channel.position(offset);
      while (bytes.hasRemaining()) channel.write(bytes);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot write merged weight '" + t.name() + "' to " + file + ": " + e.getMessage(), e);
    }
    end = offset + length;
    String location = file.getFileName().toString();
    return new ExternalTensor(
        t.name(),
        t.dataType(),
        t.dims(),
        dir,
        location,
        offset,
        length,
        List.of(
            Map.entry("location", location),
            Map.entry("offset", Long.toString(offset)),
            Map.entry("length", Long.toString(length))),
        t.docString(),
        t.extras());
  }

  @Override
  public void close() {
    try {
      channel.close();
    } catch (IOException ignored) {
      // the file is deleted next; a close failure changes nothing written
    }
    AtomicFiles.deleteQuietly(file);
  }
}
