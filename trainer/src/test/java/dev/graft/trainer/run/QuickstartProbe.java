package dev.graft.trainer.run;

import dev.graft.fixtures.Datasets;
import dev.graft.fixtures.PretrainedModels;
import dev.graft.rewrite.GraphPass;
import dev.graft.rewrite.Targets;
import dev.graft.rewrite.peft.ClassificationHeadPass;
import dev.graft.rewrite.peft.LoraPass;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class QuickstartProbe {
  @Test
  void probe() throws Exception {
    int epochs = Integer.getInteger("probe.epochs", 3);
    double lr = Double.parseDouble(System.getProperty("probe.lr", "2e-3"));
    boolean lora = Boolean.parseBoolean(System.getProperty("probe.lora", "true"));
    List<Path> data = Datasets.SENTIMENT_SOURCES.stream().map(Datasets::sentiment).toList();
    RunConfig c = new RunConfig(data, List.of(), 0.2, "text", "label", PretrainedModels.miniLmTokenizer(),
        Integer.getInteger("probe.maxlen", 64), 32, epochs, lr, 0.1, 0.01, 1.0, 42,
        dev.graft.trainer.train.Device.cpu(), 2, Path.of("/tmp/probe-run-" + lora), false, 0);
    List<GraphPass> passes = new java.util.ArrayList<>();
    if (lora) passes.add(new LoraPass(Targets.glob("layer.*.attention.{query,value}"), LoraPass.Config.defaults()));
    passes.add(new ClassificationHeadPass(ClassificationHeadPass.Config.of(2, ClassificationHeadPass.Pooling.MEAN)));
    long t0 = System.nanoTime();
    var r = new TextClassificationRun(c, new RunListener() {
      @Override public void message(String l) { System.out.println(l); }
      @Override public void step(int e, int es, int b, int bs, double loss, double eps) {
        if (b % 10 == 0) System.out.printf("epoch %d/%d batch %d/%d loss %.4f %.1f ex/s%n", e, es, b, bs, loss, eps);
      }
      @Override public void epoch(EpochMetrics m) { System.out.println(m); }
    }).run(PretrainedModels.miniLm(), passes);
    System.out.printf("total %.1f s%n", (System.nanoTime() - t0) / 1e9);
  }
}
