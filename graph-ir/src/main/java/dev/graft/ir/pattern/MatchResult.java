package dev.graft.ir.pattern;

import static com.google.common.base.Preconditions.checkArgument;

import dev.graft.ir.Node;
import java.util.Optional;
import java.util.function.Function;

/**
 * What a pattern check answers: the match, or why not and where. Matching is pure; whoever
 * rewrites takes a {@link Match}, and whoever explains ({@code graft rewrite --explain}, a fusion's
 * refused list) prints a {@link NoMatch}'s reason and node.
 *
 * <p>A refusal is a near miss when the node looked like the pattern and one check failed ("a
 * ReduceMean reduces axis 1, not the last axis"); a node that does not start the pattern at all (a
 * Div of two unrelated values) is refused with {@code nearMiss} false, so explanations can leave it
 * out.
 *
 * @param <T> what a match yields
 */
public sealed interface MatchResult<T> permits MatchResult.Match, MatchResult.NoMatch {

  /** The pattern matched; {@code value} holds what the rewrite needs. */
  record Match<T>(T value) implements MatchResult<T> {}

  /**
   * The pattern did not match.
   *
   * @param reason why, in words a user can act on ("weight (input 1) is not a constant")
   * @param at the node where the check failed, or null when no node is to blame
   * @param nearMiss whether the node looked like the pattern and a check refused it
   */
  record NoMatch<T>(String reason, Node at, boolean nearMiss) implements MatchResult<T> {
    public NoMatch {
      checkArgument(!reason.isEmpty(), "a refusal needs a reason");
    }

    /** "reason (at node 'name')". */
    public String describe() {
      return at == null ? reason : reason + " (at " + at.opType() + " '" + at.displayName() + "')";
    }

    /** The same refusal, typed for another match value. */
    @SuppressWarnings("unchecked")
    public <U> NoMatch<U> cast() {
      return (NoMatch<U>) this;
    }
  }

  static <T> MatchResult<T> match(T value) {
    return new Match<>(value);
  }

  /** A near miss: the node looked like the pattern and {@code reason} refused it. */
  static <T> MatchResult<T> fail(String reason, Node at) {
    return new NoMatch<>(reason, at, true);
  }

  /** {@code at} does not start the pattern at all. */
  static <T> MatchResult<T> notThis(String reason, Node at) {
    return new NoMatch<>(reason, at, false);
  }

  default boolean matched() {
    return this instanceof Match;
  }

  default Optional<T> matchValue() {
    return this instanceof Match<T> m ? Optional.of(m.value()) : Optional.empty();
  }

  /** The match's value mapped by {@code f}; a refusal passes through unchanged. */
  default <U> MatchResult<U> map(Function<? super T, ? extends U> f) {
    if (this instanceof Match<T> m) return new Match<>(f.apply(m.value()));
    return ((NoMatch<T>) this).cast();
  }
}
