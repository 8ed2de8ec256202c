package dev.graft.ir.convert;

import static dev.graft.ir.convert.UpgradeRule.crosses;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import java.util.Optional;

/**
 * RoiAlign at 16 gained {@code coordinate_transformation_mode} with default {@code half_pixel};
 * RoiAlign-10 behaved as {@code output_half_pixel}, so an absent mode is written out. RoiAlign-22
 * only widened types, but ONNX Runtime 1.29 has no kernel for it ("Could not find an
 * implementation for RoiAlign(22)"), so a target of 22 or newer is refused.
 */
final class RoiAlignRule implements UpgradeRule {
  static final long NO_ORT_KERNEL_FROM = 22;

  @Override
  public Optional<String> refusal(Node node, long from, long to) {
    if (to >= NO_ORT_KERNEL_FROM) {
      return Optional.of(
          "ONNX Runtime 1.29 implements RoiAlign only up to opset 21 (RoiAlign-22 has no kernel)."
              + " Target opset 21 or lower.");
    }
    return Optional.empty();
  }

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crosses(from, to, 16) || node.hasAttr("coordinate_transformation_mode")) return "";
    node.setAttr(Attr.of("coordinate_transformation_mode", "output_half_pixel"));
    return "coordinate_transformation_mode=output_half_pixel written out (old behaviour)";
  }
}
