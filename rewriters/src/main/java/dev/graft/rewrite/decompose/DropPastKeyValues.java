package dev.graft.rewrite.decompose;

import com.google.common.collect.ImmutableList;
import com.google.common.collect.ImmutableMultiset;
import dev.graft.ir.Graph;
import dev.graft.ir.Model;
import dev.graft.ir.Node;
import dev.graft.ir.Use;
import dev.graft.ir.Value;
import dev.graft.rewrite.PassResult;
import dev.graft.rewrite.PlannedPass;
import java.util.ArrayList;

/**
 * Makes a decoder's training copy run on whole sequences: the KV-cache inputs go, and with them
 * the present outputs. Training feeds the full sequence, so the past is always empty.
 *
 * <pre>
 *   k' = Concat(past_key_values.i.key, k, axis 2) -> present.i.key   =>   k' = k   (no present output)
 *   GroupQueryAttention(q, k, v, past.i.key, past.i.value, ...)      =>   GroupQueryAttention(q, k, v, -, -, ...)
 * </pre>
 *
 * A past input is a rank-4 float graph input whose every reader is one of those two; any other
 * reader keeps it (and the note says which).
 */
public final class DropPastKeyValues implements PlannedPass {
  public static final String NAME = "drop-past-key-values";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public PassResult execute(Model model, boolean dry) {
    Graph g = model.graph();
    ImmutableMultiset.Builder<String> changes = ImmutableMultiset.builder();
    ImmutableList.Builder<String> notes = ImmutableList.builder();
    for (Value in : new ArrayList<>(g.inputs())) {
      if (in.isInitializer() || !isRank4Float(in) || !in.hasUses()) continue;
      String blocker = null;
      for (Use u : in.uses()) {
        if (!isPastConcat(u) && !isFusedPast(u)) blocker = u.node().displayName();
      }
      if (blocker != null) {
        if (in.name().contains("past")) notes.add(in.name() + ": also read by " + blocker);
        continue;
      }
      changes.add(NAME + " " + in.name());
      if (dry) continue;
      for (Use u : in.uses()) {
        Node n = u.node();
        if (isFusedPast(u)) {
          n.setInput(u.index(), null);
          // Its present output now holds only this run's keys: not a cache to hand out.
          int out = u.index() - (n.opType().equals("MultiHeadAttention") ? 6 : 3) + 1;
          Value present = n.outputs().size() > out ? n.outputs().get(out) : null;
          if (present != null && present.isGraphOutput()) g.removeOutput(present);
        } else {
          Value merged = n.output();
          if (merged.isGraphOutput()) g.removeOutput(merged);
          merged.replaceAllUsesWith(n.input(1));
          g.removeNode(n);
        }
      }
      g.removeInput(in);
    }
    return new PassResult(NAME, changes.build(), 0, dry, notes.build());
  }

  private static boolean isRank4Float(Value v) {
    return v.dataType().map(t -> t == dev.graft.ir.DataType.FLOAT || t == dev.graft.ir.DataType.FLOAT16).orElse(false)
        && v.shape().map(s -> s.rank() == 4).orElse(false);
  }

  /** Concat(past, new, axis 2). */
  private static boolean isPastConcat(Use u) {
    Node n = u.node();
    if (!n.is("Concat") || n.inputCount() != 2 || u.index() != 0) return false;
    long axis = n.attrLong("axis", 0);
    return axis == 2 || axis == -2;
  }

  /** Input 3 or 4 (past key, past value) of GroupQueryAttention or MultiHeadAttention. */
  private static boolean isFusedPast(Use u) {
    Node n = u.node();
    boolean fused = "com.microsoft".equals(n.domain())
        && (n.opType().equals("GroupQueryAttention") || n.opType().equals("MultiHeadAttention"));
    int first = n.opType().equals("MultiHeadAttention") ? 6 : 3;
    return fused && (u.index() == first || u.index() == first + 1);
  }
}
