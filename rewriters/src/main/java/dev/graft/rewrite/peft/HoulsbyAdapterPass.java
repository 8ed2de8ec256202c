package dev.graft.rewrite.peft;

import dev.graft.rewrite.Targets;

/**
 * Houlsby adapters (Houlsby et al. 2019): a bottleneck adapter after the attention output
 * projection and another after the feed-forward down projection, each before its residual add,
 * so two per layer.
 *
 * <pre>
 *   y = output_dense(context)               =>  y = Add(y, up(act(down(y))))      (attention)
 *   y = down(act(up(h)))                    =>  y = Add(y, up'(act'(down'(y))))   (feed-forward)
 *   then, unchanged: LayerNorm(Add(y, skip))
 * </pre>
 *
 * Targets are block names: {@code layer.*.attention} and {@code layer.*.ffn} ({@link
 * Targets#all()} takes both in every layer). See {@link BottleneckAdapter} for the adapter and its
 * near-identity initialisation.
 */
public final class HoulsbyAdapterPass extends BlockAdapterPass {
  public static final String METHOD = "houlsby";

  public HoulsbyAdapterPass(Targets targets, BottleneckAdapter.Config config) {
    super(targets, config, METHOD, true, BottleneckAdapter.Form.SEQUENTIAL);
  }
}
