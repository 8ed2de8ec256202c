/**
 * The graph IR: {@link dev.graft.ir.Model}, {@link dev.graft.ir.Graph}, {@link dev.graft.ir.Node},
 * {@link dev.graft.ir.Value} and their attributes, types and shapes (docs/ir.md).
 *
 * <h2>Absent answers</h2>
 *
 * One convention, with no exceptions in this package's public API:
 *
 * <ol>
 *   <li>A query that may have no answer returns {@code Optional} ({@code Value.producer()},
 *       {@code Value.type()}, {@code Value.initializer()}, {@code Value.dataType()}, {@code
 *       Value.shape()}, {@code Graph.parentNode()}, {@code Graph.outerGraph()}, {@code
 *       Graph.lookup(name)}, {@code Graph.initializer(name)}, {@code Constants.valueOf(v)},
 *       {@code Model.defaultOpset()}). New queries follow this rule.
 *   <li>An accessor whose answer exists by invariant returns it and refuses the call outside
 *       that invariant: {@code Node.graph()} and {@code Value.graph()} throw {@code
 *       IllegalStateException} for a node or value in no graph (before it is added, once it is
 *       removed); {@code isAttached()} and {@code isIn(graph)} ask without failing.
 *   <li>{@code null} marks an empty ONNX positional slot, and only there: {@code Node.input(i)}
 *       and the entries of {@code Node.inputs()} for an omitted optional input, the entries of
 *       {@code Node.outputs()} for an omitted optional output. The position means something
 *       (input 2 of LayerNormalization is the bias), so the list keeps the hole; {@code
 *       Node.hasInput(i)} asks without a null check.
 *   <li>{@code null} mirrors a protobuf field that is absent where the writer must tell absent
 *       from empty to round-trip losslessly: {@code docString()}, {@code overload()}, {@code
 *       Node.rawName()}, {@code Node.rawDomain()}, {@code Model.rawIrVersion()}, the model's
 *       producer, domain and version fields, a tensor type's unset element type and a dim's
 *       denotation; each has a non-null reading beside it where one is needed ({@code
 *       Node.name()}, {@code Node.domain()}, {@code Model.irVersion()}, {@code
 *       Value.dataType()}).
 * </ol>
 *
 * Setters may take {@code null} for "unknown" or "absent" where the getter's Optional is empty
 * ({@code Value.setType(null)}, {@code Node.setInput(i, null)}).
 */
package dev.graft.ir;
