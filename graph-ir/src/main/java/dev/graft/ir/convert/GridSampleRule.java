package dev.graft.ir.convert;

import static dev.graft.ir.convert.UpgradeRule.crosses;

import dev.graft.ir.Attr;
import dev.graft.ir.Node;
import java.util.Map;

/**
 * GridSample at 20 went N-dimensional and renamed its modes: {@code bilinear} became {@code
 * linear} and {@code bicubic} became {@code cubic} (same interpolation); {@code nearest} stays.
 * GridSample-16's default mode was bilinear, so an absent mode is written out as linear.
 */
final class GridSampleRule implements UpgradeRule {
  private static final Map<String, String> RENAMED = Map.of("bilinear", "linear", "bicubic", "cubic");

  @Override
  public String apply(Node node, long from, long to, UpgradeContext ctx) {
    if (!crosses(from, to, 20)) return "";
    String mode = node.attrString("mode", "bilinear");
    String renamed = RENAMED.get(mode);
    if (renamed == null && node.hasAttr("mode")) return "";
    node.setAttr(Attr.of("mode", renamed == null ? mode : renamed));
    return "mode " + mode + " -> " + (renamed == null ? mode : renamed);
  }
}
