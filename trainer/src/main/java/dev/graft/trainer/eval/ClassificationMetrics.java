package dev.graft.trainer.eval;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import java.util.List;
import java.util.Locale;
import java.util.stream.IntStream;

/**
 * Accuracy, per-class precision, recall and F1, macro-F1 and the confusion matrix of a
 * classifier, from true class ids and the model's logits.
 *
 * <p>Conventions, chosen to agree with scikit-learn's defaults so that numbers can be compared:
 *
 * <ul>
 *   <li>The prediction is the argmax of a row of logits; ties go to the lowest class id.
 *   <li>{@code confusion()[t][p]} counts examples of true class {@code t} predicted as {@code p}
 *       (rows are truth, columns predictions).
 *   <li>A ratio with a zero denominator is 0: precision of a class never predicted, recall of a
 *       class with no examples, F1 when precision and recall are both 0 ({@code zero_division=0}).
 *   <li>Macro-F1 is the unweighted mean of F1 over the classes that occur among the true labels
 *       or the predictions. A class the model can output but that neither occurs nor is
 *       predicted is left out, since it says nothing about this data ({@code f1_score(average=
 *       "macro")} without {@code labels=}).
 * </ul>
 */
public final class ClassificationMetrics {
  private final ImmutableList<String> classNames;
  private final long[][] confusion;
  private final int count;

  private ClassificationMetrics(List<String> classNames, long[][] confusion, int count) {
    this.classNames = ImmutableList.copyOf(classNames);
    this.confusion = confusion;
    this.count = count;
  }

  /** Metrics for {@code logits[i]} against {@code labels[i]}; classes are named by their ids. */
  public static ClassificationMetrics of(int[] labels, float[][] logits) {
    checkArgument(logits.length > 0, "no examples to evaluate");
    return of(labels, logits, defaultNames(logits[0].length));
  }

  /**
   * Metrics for {@code logits[i]} (one column per class) against the true class ids {@code
   * labels[i]}; {@code classNames.get(c)} names class {@code c} in the table and the JSON.
   */
  public static ClassificationMetrics of(int[] labels, float[][] logits, List<String> classNames) {
    checkArgument(
        labels.length == logits.length,
        "%s labels for %s rows of logits; pass one label per example",
        labels.length,
        logits.length);
    int[] predicted = new int[logits.length];
    for (int i = 0; i < logits.length; i++) {
      checkArgument(
          logits[i].length == classNames.size(),
          "row %s of the logits has %s columns, expected %s (one per class)",
          i,
          logits[i].length,
          classNames.size());
      predicted[i] = argmax(logits[i], i);
    }
    return fromPredictions(labels, predicted, classNames);
  }

  /** Metrics for already-decided predictions: {@code predicted[i]} against {@code labels[i]}. */
  public static ClassificationMetrics fromPredictions(
      int[] labels, int[] predicted, List<String> classNames) {
    int k = classNames.size();
    checkArgument(k > 0, "no classes");
    checkArgument(labels.length > 0, "no examples to evaluate");
    checkArgument(
        labels.length == predicted.length,
        "%s labels for %s predictions",
        labels.length,
        predicted.length);
    long[][] confusion = new long[k][k];
    for (int i = 0; i < labels.length; i++) {
      checkArgument(
          labels[i] >= 0 && labels[i] < k,
          "example %s has label %s, not a class id in [0, %s). Unlabelled examples (-1) cannot be"
              + " scored; the model has %s outputs (%s).",
          i,
          labels[i],
          k,
          k,
          classNames);
      checkArgument(
          predicted[i] >= 0 && predicted[i] < k,
          "example %s has prediction %s, not a class id in [0, %s)",
          i,
          predicted[i],
          k);
      confusion[labels[i]][predicted[i]]++;
    }
    return new ClassificationMetrics(classNames, confusion, labels.length);
  }

  /** The index of the largest entry; the first on ties. NaN is refused: it has no order. */
  static int argmax(float[] row, int rowIndex) {
    checkArgument(row.length > 0, "row %s of the logits is empty", rowIndex);
    int best = 0;
    for (int c = 0; c < row.length; c++) {
      checkArgument(
          !Float.isNaN(row[c]),
          "row %s of the logits holds NaN at class %s: the model's output is not a number."
              + " Check the model (graft inspect) and its inputs.",
          rowIndex,
          c);
      if (row[c] > row[best]) best = c;
    }
    return best;
  }

  private static ImmutableList<String> defaultNames(int k) {
    return IntStream.range(0, k).mapToObj(Integer::toString).collect(ImmutableList.toImmutableList());
  }

  /** How many examples were scored. */
  public int count() {
    return count;
  }

  public int numClasses() {
    return classNames.size();
  }

  public ImmutableList<String> classNames() {
    return classNames;
  }

  /** A copy of the confusion matrix: {@code [true class][predicted class]}. */
  public long[][] confusion() {
    long[][] copy = new long[confusion.length][];
    for (int i = 0; i < confusion.length; i++) copy[i] = confusion[i].clone();
    return copy;
  }

  /** The fraction of examples whose prediction is their label. */
  public double accuracy() {
    long correct = 0;
    for (int c = 0; c < confusion.length; c++) correct += confusion[c][c];
    return (double) correct / count;
  }

  /** How many examples have true class {@code c}. */
  public long support(int c) {
    long n = 0;
    for (long v : row(c)) n += v;
    return n;
  }

  /** How many examples were predicted as class {@code c}. */
  public long predictedCount(int c) {
    checkClass(c);
    long n = 0;
    for (long[] r : confusion) n += r[c];
    return n;
  }

  /** Of the examples predicted as {@code c}, the fraction that are {@code c}; 0 if none. */
  public double precision(int c) {
    return ratio(confusion[checkClass(c)][c], predictedCount(c));
  }

  /** Of the examples of class {@code c}, the fraction predicted as {@code c}; 0 if none. */
  public double recall(int c) {
    return ratio(confusion[checkClass(c)][c], support(c));
  }

  /** The harmonic mean of precision and recall of class {@code c}; 0 when both are 0. */
  public double f1(int c) {
    // 2tp / (2tp + fp + fn): the same number as 2pr/(p+r), without rounding p and r first.
    long tp = confusion[checkClass(c)][c];
    long fp = predictedCount(c) - tp;
    long fn = support(c) - tp;
    return ratio(2 * tp, 2 * tp + fp + fn);
  }

  /** The mean F1 over the classes that occur as labels or predictions (see the class comment). */
  public double macroF1() {
    double sum = 0;
    int classes = 0;
    for (int c = 0; c < numClasses(); c++) {
      if (support(c) == 0 && predictedCount(c) == 0) continue;
      sum += f1(c);
      classes++;
    }
    return sum / classes; // count > 0, so some class occurs
  }

  private long[] row(int c) {
    return confusion[checkClass(c)];
  }

  private int checkClass(int c) {
    checkArgument(c >= 0 && c < numClasses(), "class %s is not in [0, %s)", c, numClasses());
    return c;
  }

  private static double ratio(long num, long den) {
    return den == 0 ? 0.0 : (double) num / den;
  }

  /**
   * {@code count, accuracy, macroF1, classes: [{name, precision, recall, f1, support}],
   * confusion: [[...]]} (rows truth, columns predictions).
   */
  public JsonObject toJsonObject() {
    JsonObject o = new JsonObject();
    o.addProperty("count", count);
    o.addProperty("accuracy", accuracy());
    o.addProperty("macroF1", macroF1());
    JsonArray classes = new JsonArray();
    for (int c = 0; c < numClasses(); c++) {
      JsonObject k = new JsonObject();
      k.addProperty("name", classNames.get(c));
      k.addProperty("precision", precision(c));
      k.addProperty("recall", recall(c));
      k.addProperty("f1", f1(c));
      k.addProperty("support", support(c));
      classes.add(k);
    }
    o.add("classes", classes);
    JsonArray matrix = new JsonArray();
    for (long[] r : confusion) {
      JsonArray row = new JsonArray();
      for (long v : r) row.add(v);
      matrix.add(row);
    }
    o.add("confusion", matrix);
    return o;
  }

  /** {@link #toJsonObject()} as one line of JSON. */
  public String toJson() {
    return new GsonBuilder().disableHtmlEscaping().create().toJson(toJsonObject());
  }

  /**
   * A table for people: accuracy and macro-F1, per-class precision, recall, F1 and support, and
   * the confusion matrix with true classes as rows.
   */
  @Override
  public String toString() {
    StringBuilder s = new StringBuilder();
    s.append(String.format(Locale.ROOT, "examples  %d%n", count));
    s.append(String.format(Locale.ROOT, "accuracy  %.4f%n", accuracy()));
    s.append(String.format(Locale.ROOT, "macro-F1  %.4f%n%n", macroF1()));
    int w = Math.max(5, classNames.stream().mapToInt(String::length).max().orElse(0));
    s.append(String.format(Locale.ROOT, "%-" + w + "s  precision  recall      f1  support%n", "class"));
    for (int c = 0; c < numClasses(); c++) {
      s.append(
          String.format(
              Locale.ROOT,
              "%-" + w + "s  %9.4f  %6.4f  %6.4f  %7d%n",
              classNames.get(c),
              precision(c),
              recall(c),
              f1(c),
              support(c)));
    }
    s.append(String.format(Locale.ROOT, "%nconfusion (rows: true, columns: predicted)%n"));
    int cell = 1;
    for (long[] r : confusion) for (long v : r) cell = Math.max(cell, Long.toString(v).length());
    for (String name : classNames) cell = Math.max(cell, name.length());
    s.append(String.format(Locale.ROOT, "%-" + w + "s", ""));
    for (String name : classNames) s.append(String.format(Locale.ROOT, "  %" + cell + "s", name));
    s.append(System.lineSeparator());
    for (int t = 0; t < numClasses(); t++) {
      s.append(String.format(Locale.ROOT, "%-" + w + "s", classNames.get(t)));
      for (long v : confusion[t]) s.append(String.format(Locale.ROOT, "  %" + cell + "d", v));
      s.append(System.lineSeparator());
    }
    return s.toString();
  }
}
