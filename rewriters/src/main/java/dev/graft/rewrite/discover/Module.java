package dev.graft.rewrite.discover;

import com.google.common.collect.ImmutableList;
import dev.graft.ir.Node;
import java.util.OptionalInt;

/**
 * A part of a model found by {@link ModuleDiscovery}: a linear layer, an attention block, a
 * feed-forward block, a normalisation, an embedding or a residual add.
 *
 * <p>A module is a view of the graph at the moment of discovery: it holds the graph's own nodes
 * and values, so discover again after a pass changes the graph. Names are stable and readable
 * ({@code layer.3.attention.query}, {@code layer.3.ffn.down}, {@code embeddings.norm}); they do
 * not depend on the names of initializers.
 */
public sealed interface Module
    permits LinearModule,
        AttentionModule,
        FeedForwardModule,
        NormModule,
        EmbeddingModule,
        ResidualModule {

  String name();

  ModuleKind kind();

  /** The transformer layer the module belongs to, counted along the residual stream from 0. */
  OptionalInt layer();

  /** The graph nodes the module covers, in stored order. */
  ImmutableList<Node> nodes();
}
