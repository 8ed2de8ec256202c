/**
 * The graph IR: {@link dev.graft.ir.Model}, {@link dev.graft.ir.Graph}, {@link dev.graft.ir.Node},
 * {@link dev.graft.ir.Value} and their attributes, types and shapes (docs/ir.md).
 *
 * <h2>Absent answers</h2>
 *
 * <ol>
 *   <li>A query that may have no answer returns {@code Optional} ({@code Value.producer()},
 *       {@code Value.initializer()}, {@code Value.dataType()}, {@code Value.shape()}, {@code
 *       Graph.lookup(name)}, {@code Graph.initializer(name)}, {@code Constants.valueOf(v)},
 *       {@code Model.defaultOpset()}). New queries follow this rule.
 *   <li>{@code null} marks an empty ONNX positional slot, and only there: {@code Node.input(i)}
 *       and the entries of {@code Node.inputs()} for an omitted optional input, the entries of
 *       {@code Node.outputs()} for an omitted optional output. The position means something
 *       (input 2 of LayerNormalization is the bias), so the list keeps the hole; {@code
 *       Node.hasInput(i)} asks without a null check.
 *   <li>{@code null} mirrors a protobuf field that is absent where the writer must tell absent
 *       from empty to round-trip losslessly: {@code docString()}, {@code overload()}, {@code
 *       Node.rawName()}, {@code Node.rawDomain()}, {@code Model.rawIrVersion()} and the model's
 *       producer, domain and version fields; each has a non-null reading beside it where one is
 *       needed ({@code Node.name()}, {@code Node.domain()}, {@code Model.irVersion()}).
 * </ol>
 *
 * Known exceptions, kept for their callers until they move to Optional forms: {@code
 * Value.type()} ({@code tensorType()}, {@code dataType()}, {@code shape()} are the Optional
 * forms), {@code Value.graph()} and {@code Node.graph()} (null while detached), {@code
 * Graph.parentNode()} and {@code Graph.outerGraph()} (null for a top-level graph).
 */
package dev.graft.ir;
