package dev.graft.ir.io;

import static com.google.common.base.Preconditions.checkArgument;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Large writes into a data file past the page cache: the file opened a second time for direct
 * I/O (O_DIRECT) beside its ordinary channel. Whole aligned blocks go through the direct channel;
 * a last partial block, an unaligned offset, and everything on a file system without direct I/O
 * (tmpfs and others) go through the ordinary one, so a caller never has to care:
 *
 * <pre>
 *   write(bytes, at)          aligned direct buffer ──► direct channel   (tail ──► buffered)
 *                             other bytes of 1 MiB+ ──► copied through an aligned chunk ──► direct
 *   copy(src, from, n, at)    src ──read──► aligned chunk ──► direct channel, chunk by chunk
 * </pre>
 *
 * Why: a model's data file is written once and read by nobody soon. Buffered writes copy every
 * byte into a fresh page-cache page first, and on a memory-pressed or virtualised machine those
 * fresh pages, not the disk, bound a large write, by up to ten times (docs/large-models.md,
 * "Writing past the page cache"). The owner's {@code force} makes both channels' data durable
 * (fsync is per file). {@code -Dgraft.io.noDirect=true} turns direct I/O off. Positional writes
 * may come from several threads; {@link #copy} and chunked writes share one chunk and run one at a
 * time.
 */
public final class DirectWrites implements AutoCloseable {
  /** Alignment of direct I/O: buffer address, file offset and length written directly (a page). */
  public static final int ALIGNMENT = 4096;

  /** Bytes from which an in-memory tensor that is not in an aligned buffer is copied through one. */
  static final long CHUNKED_FROM = 1 << 20;

  private static final int CHUNK = 8 << 20;

  private final FileChannel buffered;
  private volatile FileChannel direct;
  /** The aligned buffer copies and chunked writes go through, made on first use. */
  private ByteBuffer chunk;

  private DirectWrites(FileChannel buffered, FileChannel direct) {
    this.buffered = buffered;
    this.direct = direct;
  }

  /** Direct writes into {@code file}, whose ordinary channel {@code buffered} the caller owns. */
  public static DirectWrites open(Path file, FileChannel buffered) {
    return new DirectWrites(buffered, openDirect(file));
  }

  private static FileChannel openDirect(Path file) {
    if (Boolean.getBoolean("graft.io.noDirect")) return null;
    try {
      if (Files.getFileStore(file).getBlockSize() > ALIGNMENT) return null;
      return FileChannel.open(file, StandardOpenOption.WRITE, com.sun.nio.file.ExtendedOpenOption.DIRECT);
    } catch (IOException | UnsupportedOperationException e) {
      return null; // buffered writes only
    }
  }

  /**
   * A direct buffer of {@code bytes} bytes whose address is aligned for direct I/O: bytes
   * computed into it (by ORT, in an export) are written past the page cache without a copy.
   */
  public static ByteBuffer alignedBuffer(int bytes) {
    checkArgument(bytes >= 0, "A buffer of %s bytes", bytes);
    // alignedSlice rounds both ends inward: room for a whole number of blocks past the start.
    int blocks = Math.toIntExact(((long) bytes + ALIGNMENT - 1) / ALIGNMENT);
    ByteBuffer b = ByteBuffer.allocateDirect(Math.toIntExact((blocks + 1L) * ALIGNMENT)).alignedSlice(ALIGNMENT);
    return b.limit(bytes).slice();
  }

  /** Whether whole blocks go past the page cache (false where the file system refuses). */
  public boolean active() {
    return direct != null;
  }

  /** Writes {@code data} (position to limit; the position is not moved) at byte {@code at}. */
  public void write(ByteBuffer data, long at) throws IOException {
    ByteBuffer bytes = data.duplicate();
    if (direct != null && at % ALIGNMENT == 0 && bytes.remaining() >= ALIGNMENT) {
      if (bytes.isDirect() && bytes.alignmentOffset(bytes.position(), ALIGNMENT) == 0) {
        at = writeBlocks(bytes, at);
      } else if (bytes.remaining() >= CHUNKED_FROM) {
        writeChunked(bytes, at);
        return;
      }
    }
    while (bytes.hasRemaining()) at += buffered.write(bytes, at);
  }

  /**
   * Copies {@code length} bytes of {@code src} from byte {@code from} to byte {@code at}, chunk by
   * chunk through an aligned buffer (the kernel's file-to-file copy would go through the page
   * cache).
   */
  public synchronized void copy(FileChannel src, long from, long length, long at) throws IOException {
    if (chunk == null) chunk = alignedBuffer(CHUNK);
    long done = 0;
    while (done < length) {
      int n = (int) Math.min(CHUNK, length - done);
      ByteBuffer b = chunk.duplicate().clear().limit(n);
      while (b.hasRemaining()) {
        if (src.read(b, from + done + b.position()) < 0) {
          throw new IOException("short read from " + src + " at byte " + (from + done + b.position()));
        }
      }
      b.flip();
      long pos = writeBlocks(b, at + done);
      while (b.hasRemaining()) pos += buffered.write(b, pos);
      done += n;
    }
  }

  private synchronized void writeChunked(ByteBuffer bytes, long at) throws IOException {
    if (chunk == null) chunk = alignedBuffer(CHUNK);
    while (bytes.hasRemaining()) {
      int n = Math.min(CHUNK, bytes.remaining());
      ByteBuffer b = chunk.duplicate().clear().limit(n);
      b.put(bytes.duplicate().limit(bytes.position() + n)).flip();
      bytes.position(bytes.position() + n);
      long pos = writeBlocks(b, at);
      while (b.hasRemaining()) pos += buffered.write(b, pos);
      at += n;
    }
  }

  /**
   * Writes the whole blocks of {@code b} (an aligned direct buffer) at {@code at} directly,
   * moving its position past them; returns the file position reached. Where the file system
   * refuses a write, direct I/O is off from then on and the rest goes buffered.
   */
  private long writeBlocks(ByteBuffer b, long at) {
    FileChannel d = direct;
    int aligned = b.remaining() - b.remaining() % ALIGNMENT;
    if (d == null || aligned == 0 || at % ALIGNMENT != 0) return at;
    ByteBuffer head = b.duplicate().limit(b.position() + aligned);
    try {
      while (head.hasRemaining()) at += d.write(head, at);
    } catch (IOException refused) {
      close();
    }
    b.position(head.position());
    return at;
  }

  /** Closes the direct channel (the caller closes its own). */
  @Override
  public synchronized void close() {
    if (direct == null) return;
    try {
      direct.close();
    } catch (IOException ignored) {
      // written data is in the file; the owner's force makes it durable
    }
    direct = null;
  }
}
