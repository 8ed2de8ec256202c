package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkNotNull;

/** One labelled text, as read from a file: the label is the file's string, not yet a class id. */
public record TextExample(String text, String label) {
  public TextExample {
    checkNotNull(text, "text");
    checkNotNull(label, "label");
  }
}
