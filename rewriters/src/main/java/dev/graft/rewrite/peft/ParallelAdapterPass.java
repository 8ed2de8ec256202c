package dev.graft.rewrite.peft;

import dev.graft.rewrite.Targets;

/**
 * Parallel adapters (He et al. 2022): a bottleneck adapter beside a frozen block, reading the
 * block's input and adding its scaled result to the block's output before the residual add.
 *
 * <pre>
 *   y = OP(x)  =>  y = Add(OP(x), Mul(up(act(down(x))), s))       OP = attention or feed-forward
 * </pre>
 *
 * Targets are block names: {@code layer.*.ffn} (the usual choice) or {@code layer.*.attention};
 * x is the hidden state the block's first linears read. See {@link BottleneckAdapter}; s is the
 * config's scale.
 */
public final class ParallelAdapterPass extends BlockAdapterPass {
  public static final String METHOD = "parallel-adapter";

  public ParallelAdapterPass(Targets targets, BottleneckAdapter.Config config) {
    super(targets, config, METHOD, true, BottleneckAdapter.Form.PARALLEL);
  }
}
