package dev.graft.trainer.task;

import com.google.common.collect.ImmutableMap;
import com.google.common.collect.ImmutableSortedSet;
import dev.graft.trainer.data.TextDatasets;
import dev.graft.trainer.data.TextExample;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * The registered tasks, by the name {@code graft train --task} takes, and the default choice
 * from the labels. A new task adds one line here.
 */
public final class Tasks {
  private Tasks() {}

  private static final ImmutableMap<String, Function<TaskOptions, Task>> TASKS =
      ImmutableMap.<String, Function<TaskOptions, Task>>builder()
          .put(ClassifyTask.NAME, o -> new ClassifyTask(o.head(), o.seed()))
          .put(RegressTask.NAME, o -> new RegressTask(o.head(), o.seed(), o.huberDelta()))
          .put(EmbedTask.NAME, o -> new EmbedTask(o.head(), o.seed(), o.scale(), o.pairColumn()))
          .put(CausalLmTask.NAME, o -> new CausalLmTask())
          .put(CodaDistillTask.NAME, o -> new CodaDistillTask())
          .buildOrThrow();

  /** More distinct integer labels than this read as a numeric target, not as classes. */
  static final int MAX_INTEGER_CLASSES = 20;

  public static ImmutableSortedSet<String> names() {
    return ImmutableSortedSet.copyOf(TASKS.keySet());
  }

  /** The task called {@code name}, with {@code options}. */
  public static Task create(String name, TaskOptions options) {
    Function<TaskOptions, Task> f = TASKS.get(name);
    if (f == null) {
      throw new IllegalArgumentException("Unknown task '" + name + "'. The tasks are " + names() + ".");
    }
    return f.apply(options);
  }

  /** A task chosen from the data, and why. */
  public record Choice(String task, String reason) {}

  /**
   * The default task for {@code data}'s labels: {@code regress} when every label is a number and
   * they are not a few integers (non-integers, or more than {@value #MAX_INTEGER_CLASSES} distinct
   * integers), else {@code classify}.
   */
  public static Choice choose(DataConfig data) {
    List<String> labels = new ArrayList<>();
    for (Path p : data.train()) {
      for (TextExample e : TextDatasets.read(p, data.textColumn(), data.labelColumn())) labels.add(e.label());
    }
    return choose(labels);
  }

  static Choice choose(List<String> labels) {
    ImmutableSortedSet<String> distinct = ImmutableSortedSet.copyOf(labels);
    boolean numeric = true;
    boolean integers = true;
    for (String l : distinct) {
      try {
        double v = Double.parseDouble(l);
        if (!Double.isFinite(v)) numeric = false;
        if (v != Math.rint(v)) integers = false;
      } catch (NumberFormatException e) {
        numeric = false;
        break;
      }
    }
    String shown = distinct.size() <= 5 ? distinct.toString() : distinct.size() + " distinct values";
    if (numeric && (!integers || distinct.size() > MAX_INTEGER_CLASSES)) {
      return new Choice(
          "regress",
          "every label is a number (" + shown + ")" + (integers ? ", more than " + MAX_INTEGER_CLASSES + " distinct" : "")
              + "; --task classify to treat them as classes");
    }
    return new Choice(
        ClassifyTask.NAME,
        "the labels are " + (numeric ? "a few integers " : "categories ") + shown
            + (numeric ? "; --task regress to read them as numbers" : ""));
  }
}
