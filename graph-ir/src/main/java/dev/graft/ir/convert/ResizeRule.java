package dev.graft.ir.convert;

import static dev.graft.ir.convert.UpgradeRule.crosses;

import dev.graft.ir.Node;
import java.util.Optional;

/**
 * Resize, 11 -> 13 -> 18 -> 19. At 13 roi and scales became optional (a model that passes them
 * keeps its meaning); at 18 antialias, axes and keep_aspect_ratio_policy arrived with defaults that
 * keep the old meaning, and the deprecated coordinate mode {@code tf_half_pixel_for_nn} was
 * removed; 19 added {@code half_pixel_symmetric}. So the node is kept as it is, except that
 * {@code tf_half_pixel_for_nn} cannot cross 18.
 */
final class ResizeRule implements UpgradeRule {
  private static final String REMOVED_MODE = "tf_half_pixel_for_nn";

  @Override
  public Optional<String> refusal(Node node, long from, long to) {
    if (crosses(from, to, 18)
        && REMOVED_MODE.equals(node.attrString("coordinate_transformation_mode", "half_pixel"))) {
      return Optional.of(
          "its coordinate_transformation_mode '"
              + REMOVED_MODE
              + "' was removed at opset 18 and has no equivalent mode. Target opset 17, or"
              + " re-export the model with another coordinate mode.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    return "";
  }
}
