package dev.graft.ir.convert;

import static dev.graft.ir.convert.UpgradeRule.crosses;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;

/**
 * RoiAlign at 16 gained {@code coordinate_transformation_mode} with default {@code half_pixel};
 * RoiAlign-10 behaved as {@code output_half_pixel}, so an absent mode is written out.
 */
final class RoiAlignRule implements UpgradeRule {

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crosses(from, to, 16) || node.hasAttr("coordinate_transformation_mode")) return "";
    node.setAttr(Attr.of("coordinate_transformation_mode", "output_half_pixel"));
    return "coordinate_transformation_mode=output_half_pixel written out (old behaviour)";
  }
}
