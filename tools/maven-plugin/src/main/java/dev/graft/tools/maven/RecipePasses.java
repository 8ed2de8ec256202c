package dev.graft.tools.maven;

import static com.google.common.base.Preconditions.checkArgument;

import com.google.common.collect.ImmutableList;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.peft.LoraPass;
import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.yaml.snakeyaml.Yaml;

/**
 * The passes a recipe file names. Interim: reads only {@code lora: {targets, rank, alpha}} until
 * the rewriters' recipe reader ({@code dev.graft.rewrite.recipe.Recipe}) lands, which replaces
 * this body with {@code Recipe.load(path).passes()}.
 */
final class RecipePasses {
  private RecipePasses() {}

  static ImmutableList<GraphPass> load(Path path) {
    Object doc;
    try (Reader r = Files.newBufferedReader(path)) {
      doc = new Yaml().load(r);
    } catch (IOException e) {
      throw new UncheckedIOException("Cannot read recipe " + path, e);
    }
    checkArgument(doc instanceof Map, "Recipe %s must be a YAML mapping with a 'lora' entry", path);
    Object lora = ((Map<?, ?>) doc).get("lora");
    checkArgument(lora instanceof Map, "Recipe %s has no 'lora' mapping (targets, rank, alpha)", path);
    Map<?, ?> l = (Map<?, ?>) lora;
    LoraPass.Config c = LoraPass.Config.defaults();
    if (l.get("rank") instanceof Number n) c = c.withRank(n.intValue());
    if (l.get("alpha") instanceof Number n) c = c.withAlpha(n.doubleValue());
    Targets t = l.get("targets") instanceof String s ? Targets.glob(s) : Targets.all();
    return ImmutableList.of(new LoraPass(t, c));
  }
}
