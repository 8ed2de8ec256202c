import dev.graft.rewrite.recipe.Recipe;
import dev.graft.trainer.run.Pipeline;
import dev.graft.trainer.run.RunConfig;
import dev.graft.trainer.run.RunListener;
import dev.graft.trainer.run.RunResult;
import dev.graft.trainer.task.ClassifyTask;
import dev.graft.trainer.task.HeadKind;
import java.nio.file.Path;
import java.util.List;

/** java FineTune MODEL TOKENIZER RECIPE TRAIN TEST OUT: fine-tune, evaluate, save OUT/tuned.onnx. */
public class FineTune {
  public static void main(String[] a) throws Exception {
    RunConfig config = RunConfig.builder(List.of(Path.of(a[3])), Path.of(a[1]), Path.of(a[5]))
        .test(List.of(Path.of(a[4]))).epochs(1).learningRate(2e-3).maxLength(64).build();
    RunResult r = new Pipeline(config, RunListener.SILENT)
        .run(Path.of(a[0]), Recipe.load(Path.of(a[2])), new ClassifyTask(HeadKind.MEAN));
    System.out.printf("test accuracy %.4f, %,d trainable parameters, saved %s%n",
        r.last().testAccuracy(), r.trainableParameters(), r.tunedModel());
  }
}
