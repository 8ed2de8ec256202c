package dev.graft.trainer.train;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableMap;
import java.util.Map;

/**
 * AdamW's hyperparameters (Loshchilov and Hutter), baked into the train-step graph as constants;
 * the learning rate is not one of them: it is a graph input, so that a schedule can change it
 * every step without a new session. The update is PyTorch's {@code torch.optim.AdamW}:
 *
 * <pre>
 *   m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g^2
 *   p = p (1 - lr wd)  -  lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * </pre>
 *
 * with the decay applied only to the parameters {@link #decayOn} selects.
 */
public record AdamW(double beta1, double beta2, double epsilon, double weightDecay, DecayOn decayOn) {

  /** Which parameters get the decoupled weight decay. */
  public enum DecayOn {
    /** Matrices and higher ranks only: not biases, not LayerNorm gamma and beta (the usual choice). */
    RANK_AT_LEAST_2,
    ALL,
    NONE;

    boolean applies(long[] dims) {
      return switch (this) {
        case RANK_AT_LEAST_2 -> dims.length >= 2;
        case ALL -> true;
        case NONE -> false;
      };
    }
  }

  public AdamW {
    checkArgument(beta1 >= 0 && beta1 < 1, "AdamW beta1 must lie in [0, 1), got %s", beta1);
    checkArgument(beta2 >= 0 && beta2 < 1, "AdamW beta2 must lie in [0, 1), got %s", beta2);
    checkArgument(epsilon > 0, "AdamW epsilon must be positive, got %s", epsilon);
    checkArgument(weightDecay >= 0, "AdamW weight decay must not be negative, got %s", weightDecay);
    checkArgument(decayOn != null, "AdamW needs a DecayOn policy");
  }

  /** PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01 on matrices. */
  public static AdamW defaults() {
    return new AdamW(0.9, 0.999, 1e-8, 0.01, DecayOn.RANK_AT_LEAST_2);
  }

  public AdamW withBetas(double b1, double b2) {
    return new AdamW(b1, b2, epsilon, weightDecay, decayOn);
  }

  public AdamW withEpsilon(double eps) {
    return new AdamW(beta1, beta2, eps, weightDecay, decayOn);
  }

  public AdamW withWeightDecay(double wd) {
    return new AdamW(beta1, beta2, epsilon, wd, decayOn);
  }

  public AdamW withDecayOn(DecayOn d) {
    return new AdamW(beta1, beta2, epsilon, weightDecay, d);
  }

  /** Whether a parameter of these dims is decayed. */
  public boolean decays(long[] dims) {
    return weightDecay > 0 && decayOn.applies(dims);
  }

  /** For checkpoints: the hyperparameters as strings. */
  Map<String, String> describe() {
    return ImmutableMap.of(
        "beta1", Double.toString(beta1),
        "beta2", Double.toString(beta2),
        "epsilon", Double.toString(epsilon),
        "weight_decay", Double.toString(weightDecay),
        "decay_on", decayOn.name());
  }
}
