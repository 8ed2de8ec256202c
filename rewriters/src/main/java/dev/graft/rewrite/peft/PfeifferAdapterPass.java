package dev.graft.rewrite.peft;

import dev.graft.rewrite.Targets;

/**
 * Pfeiffer adapters (Pfeiffer et al. 2020, AdapterFusion): one bottleneck adapter per layer,
 * after the feed-forward down projection and before its residual add.
 *
 * <pre>
 *   y = down(act(up(h)))  =>  y = Add(y, up'(act'(down'(y))));  then, unchanged: LayerNorm(Add(y, skip))
 * </pre>
 *
 * Targets are feed-forward block names ({@code layer.*.ffn}). See {@link BottleneckAdapter} for
 * the adapter and its near-identity initialisation.
 */
public final class PfeifferAdapterPass extends BlockAdapterPass {
  public static final String METHOD = "pfeiffer";

  public PfeifferAdapterPass(Targets targets, BottleneckAdapter.Config config) {
    super(targets, config, METHOD, false, BottleneckAdapter.Form.SEQUENTIAL);
  }
}
