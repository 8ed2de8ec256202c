package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;

/**
 * Images with class ids and the class names in id order ({@code classes.get(label)}), as an
 * image reader returns them.
 */
public record LabelledImages(ImmutableList<ImageExample> examples, LabelMap classes) {
  public LabelledImages {
    for (ImageExample e : examples) {
      checkArgument(
          e.label() < classes.size(), "label %s outside the %s classes %s", e.label(), classes.size(), classes);
    }
  }

  /** The first {@code n} examples (all when fewer). */
  public LabelledImages limit(int n) {
    return n >= examples.size() ? this : new LabelledImages(examples.subList(0, n), classes);
  }
}
