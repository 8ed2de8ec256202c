package dev.graft.trainer.data;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import java.util.List;

/** Stacks {@link ImageExample}s into {@link ImageBatch}es; the last batch may be smaller. */
public final class ImageBatcher {
  private final int batchSize;

  public ImageBatcher(int batchSize) {
    checkArgument(batchSize > 0, "batch size %s must be positive", batchSize);
    this.batchSize = batchSize;
  }

  public int batchSize() {
    return batchSize;
  }

  /** The examples in their order, {@code batchSize} at a time. */
  public ImmutableList<ImageBatch> batches(List<ImageExample> examples) {
    ImmutableList.Builder<ImageBatch> out = ImmutableList.builder();
    for (int start = 0; start < examples.size(); start += batchSize) {
      out.add(batch(examples.subList(start, Math.min(examples.size(), start + batchSize))));
    }
    return out.build();
  }

  /** The examples in the order of {@link Shuffle#permutation}{@code (n, seed)}, batched. */
  public ImmutableList<ImageBatch> shuffled(List<ImageExample> examples, long seed) {
    return batches(Shuffle.shuffled(examples, seed));
  }

  /** One batch of all of {@code examples}, which must share one shape. */
  public ImageBatch batch(List<ImageExample> examples) {
    checkArgument(!examples.isEmpty(), "cannot batch zero images");
    ImageExample first = examples.get(0);
    int per = first.pixels().length;
    float[] pixels = new float[examples.size() * per];
    long[] labels = new long[examples.size()];
    for (int i = 0; i < examples.size(); i++) {
      ImageExample e = examples.get(i);
      checkArgument(
          e.channels() == first.channels()
              && e.height() == first.height()
              && e.width() == first.width(),
          "image %s is %s x %s x %s but image 0 is %s x %s x %s; resize them to one shape",
          i,
          e.channels(),
          e.height(),
          e.width(),
          first.channels(),
          first.height(),
          first.width());
      System.arraycopy(e.pixels(), 0, pixels, i * per, per);
      labels[i] = e.label();
    }
    return new ImageBatch(
        examples.size(), first.channels(), first.height(), first.width(), pixels, labels);
  }
}
