package dev.graft.trainer.data;

import com.google.common.collect.ImmutableList;
import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPInputStream;

/**
 * Reads the IDX format of MNIST and Fashion-MNIST (LeCun's layout; Debian's {@code
 * dataset-fashion-mnist} ships it): a big-endian header, then unsigned bytes.
 *
 * <pre>
 *   images: 00 00 08 03 | count | rows | cols | count × rows × cols pixels (0..255, row-major)
 *   labels: 00 00 08 01 | count | count labels (0..255)
 * </pre>
 *
 * Files may be gzipped ({@code .gz}, recognised by their first two bytes, not their name). Pixels
 * become floats in [0, 1] (value / 255), one grey channel. The class names are the label numbers
 * unless the caller names them.
 */
public final class IdxFiles {
  private static final int UBYTE = 0x08;

  private IdxFiles() {}

  /** The images of {@code images} with the labels of {@code labels}; {@code limit} ≤ 0 reads all. */
  public static LabelledImages read(Path images, Path labels, int limit, List<String> classNames) {
    try {
      int[] labelIds = readLabels(labels, limit);
      ImmutableList<ImageExample> examples = readImages(images, labelIds, labels, limit);
      int max = 0;
      for (int l : labelIds) max = Math.max(max, l);
      List<String> names = new ArrayList<>(classNames);
      if (names.isEmpty()) {
        for (int i = 0; i <= max; i++) names.add(String.valueOf(i));
      } else if (max >= names.size()) {
        throw new DataFileException(
            labels, 0, "holds label " + max + " but only " + names.size() + " class names were given: " + names);
      }
      return new LabelledImages(examples, LabelMap.ofOrdered(names));
    } catch (NoSuchFileException e) {
      throw new UncheckedIOException(
          "IDX file " + e.getFile() + " does not exist. Pass the images file (…-images-idx3-ubyte[.gz])"
              + " and its labels file (…-labels-idx1-ubyte[.gz]).",
          e);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read IDX data " + images + ": " + e.getMessage(), e);
    }
  }

  private static int[] readLabels(Path file, int limit) throws IOException {
    try (DataInputStream in = open(file)) {
      int[] dims = header(in, file, 1, "labels");
      int n = limit > 0 ? Math.min(limit, dims[0]) : dims[0];
      int[] out = new int[n];
      for (int i = 0; i < n; i++) out[i] = in.readUnsignedByte();
      return out;
    } catch (EOFException e) {
      throw new DataFileException(file, 0, "ends before the count its header states; the file is truncated.");
    }
  }

  private static ImmutableList<ImageExample> readImages(Path file, int[] labels, Path labelFile, int limit)
      throws IOException {
    try (DataInputStream in = open(file)) {
      int[] dims = header(in, file, 3, "images");
      int n = limit > 0 ? Math.min(limit, dims[0]) : dims[0];
      if (n != labels.length) {
        throw new DataFileException(
            file, 0, "holds " + dims[0] + " images but " + labelFile.getFileName() + " holds a different"
                + " number of labels; pass the labels file that belongs to these images.");
      }
      int rows = dims[1];
      int cols = dims[2];
      byte[] raw = new byte[rows * cols];
      ImmutableList.Builder<ImageExample> out = ImmutableList.builderWithExpectedSize(n);
      for (int i = 0; i < n; i++) {
        in.readFully(raw);
        float[] pixels = new float[raw.length];
        for (int k = 0; k < raw.length; k++) pixels[k] = (raw[k] & 0xff) / 255f;
        out.add(new ImageExample(pixels, 1, rows, cols, labels[i]));
      }
      return out.build();
    } catch (EOFException e) {
      throw new DataFileException(file, 0, "ends before the count its header states; the file is truncated.");
    }
  }

  /** Checks the magic number and returns the dimensions. */
  private static int[] header(DataInputStream in, Path file, int rank, String what) throws IOException {
    int magic = in.readInt();
    int type = (magic >> 8) & 0xff;
    int dims = magic & 0xff;
    if ((magic >>> 16) != 0 || type != UBYTE || dims != rank) {
      throw new DataFileException(
          file, 0, String.format(
              "is not an IDX %s file: its magic number is 0x%08X, expected 0x%08X (unsigned bytes,"
                  + " %s dimension%s). Pass the …-%s-idx%s-ubyte file.",
              what, magic, (UBYTE << 8) | rank, rank, rank == 1 ? "" : "s", what, rank));
    }
    int[] out = new int[rank];
    for (int i = 0; i < rank; i++) {
      out[i] = in.readInt();
      if (out[i] <= 0) {
        throw new DataFileException(file, 0, "dimension " + i + " of its header is " + out[i] + "; it must be positive.");
      }
    }
    return out;
  }

  private static DataInputStream open(Path file) throws IOException {
    InputStream raw = new BufferedInputStream(Files.newInputStream(file), 1 << 16);
    raw.mark(2);
    int b0 = raw.read();
    int b1 = raw.read();
    raw.reset();
    InputStream in = b0 == 0x1f && b1 == 0x8b ? new BufferedInputStream(new GZIPInputStream(raw, 1 << 16)) : raw;
    return new DataInputStream(in);
  }
}
