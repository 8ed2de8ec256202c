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
import java.util.List;
import java.util.Map;
import org.yaml.snakeyaml.Yaml;

/**
 * The passes a recipe file names. Interim: reads only {@code passes: [{method: lora, targets, rank, alpha}]} until
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
    checkArgument(doc instanceof Map<?, ?> top && top.get("passes") instanceof List,
        "Recipe %s must be a mapping with a 'passes' list", path);
    ImmutableList.Builder<GraphPass> out = ImmutableList.builder();
    for (Object entry : (List<?>) ((Map<?, ?>) doc).get("passes")) {
      checkArgument(entry instanceof Map<?, ?> e && "lora".equals(e.get("method")),
          "Recipe %s: only 'method: lora' entries are read until the full recipe reader lands, got %s", path, entry);
      Map<?, ?> l = (Map<?, ?>) entry;
      LoraPass.Config c = LoraPass.Config.defaults();
      if (l.get("rank") instanceof Number n) c = c.withRank(n.intValue());
      if (l.get("alpha") instanceof Number n) c = c.withAlpha(n.doubleValue());
      Targets t = l.get("targets") instanceof String g ? Targets.glob(g) : Targets.all();
      out.add(new LoraPass(t, c));
    }
    return out.build();
  }
}
