package dev.graft.rewrite.discover;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import java.util.OptionalInt;

/**
 * A normalisation with a learned affine: {@code gamma * normalize(x) + beta}.
 *
 * @param style which form the graph uses
 * @param gamma the scale value (the original constant, behind any Graft merge nodes)
 * @param beta the shift value (likewise)
 * @param scaleUse where gamma enters: the LayerNormalization or BatchNormalization node and
 *     input 1, or the decomposed pattern's final Mul and the input index of gamma there
 * @param shiftUse where beta enters: input 2 of the fused ops, or the final Add and its index
 * @param features the size of gamma and beta
 */
public record NormModule(
    String name,
    OptionalInt layer,
    Style style,
    Value input,
    Value output,
    Value gamma,
    Value beta,
    Use scaleUse,
    Use shiftUse,
    long features,
    ImmutableList<Node> nodes)
    implements Module {

  /** The forms of normalisation discovery recognises. */
  public enum Style {
    /** The LayerNormalization op (opset 17 and newer). */
    LAYER_NORMALIZATION,
    /** ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, then Mul by gamma and Add of beta. */
    DECOMPOSED_LAYER_NORM,
    /** BatchNormalization (inference form). */
    BATCH_NORMALIZATION,
    /** RMSNorm, scale only: decomposed, SimplifiedLayerNormalization or SkipSimplifiedLayerNormalization. */
    RMS_NORM
  }

  @Override
  public ModuleKind kind() {
    return ModuleKind.NORM;
  }

  NormModule named(String newName, OptionalInt newLayer) {
    return new NormModule(
        newName, newLayer, style, input, output, gamma, beta, scaleUse, shiftUse, features, nodes);
  }
}
