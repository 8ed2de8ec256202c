package dev.graft.rewrite.peft;

import static com.google.common.base.Preconditions.checkArgument;

import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;
import org.ejml.dense.row.SingularOps_DDRM;
import org.ejml.dense.row.factory.DecompositionFactory_DDRM;
import org.ejml.interfaces.decomposition.QRDecomposition;
import org.ejml.interfaces.decomposition.SingularValueDecomposition_F64;

/**
 * LoRA's A and B taken from the frozen weight instead of drawn at random, and the residual the
 * frozen weight keeps, so that the adapted layer computes what it did:
 *
 * <pre>
 *   W [in, out]  =>  W_res = W - s·A·B,  y = x·W_res + s·x·A·B = x·W
 *
 *   PiSSA (Meng et al. 2024):  W = U·S·Vᵀ,  A = U_r·√(S_r/s) [in, r],  B = √(S_r/s)·V_rᵀ [r, out]
 *   OLoRA (Büyükakyüz 2024):   Wᵀ = Q·R,    A = R_rᵀ [in, r],          B = Q_rᵀ [r, out]
 * </pre>
 *
 * the same factors as Hugging Face PEFT's {@code init_lora_weights="pissa"} and {@code "olora"}
 * in PyTorch's [out, in] layout (PEFT's lora_A is Aᵀ, lora_B is Bᵀ). ONNX Runtime has no SVD or
 * QR, so the decomposition and the residual are computed here, once per targeted linear at rewrite
 * time, in double precision by EJML; A and B are rounded to float first, so the residual makes up
 * for their rounding. The SVD is deterministic, so replaying the rewrite on the base (adapter
 * export) gives the same residual.
 */
final class LoraWeightInit {
  private LoraWeightInit() {}

  /** A [in, r], B [r, out] and the residual W - s·A·B [in, out], row-major floats. */
  record Factors(float[] a, float[] b, float[] residual) {}

  /** PiSSA: the r principal singular directions of {@code w} [in, out]. */
  static Factors pissa(float[] w, int in, int out, int r, double scaling) {
    check(in, out, r, "PiSSA");
    DMatrixRMaj m = matrix(w, in, out);
    SingularValueDecomposition_F64<DMatrixRMaj> svd = DecompositionFactory_DDRM.svd(in, out, true, true, true);
    checkArgument(svd.decompose(m.copy()), "PiSSA: the SVD of a [%s, %s] weight did not converge", in, out);
    DMatrixRMaj u = svd.getU(null, false);
    DMatrixRMaj s = svd.getW(null);
    DMatrixRMaj vt = svd.getV(null, true);
    SingularOps_DDRM.descendingOrder(u, false, s, vt, true);
    float[] a = new float[in * r];
    float[] b = new float[r * out];
    for (int k = 0; k < r; k++) {
      double root = Math.sqrt(s.get(k, k) / scaling);
      for (int i = 0; i < in; i++) a[i * r + k] = (float) (u.get(i, k) * root);
      for (int j = 0; j < out; j++) b[k * out + j] = (float) (vt.get(k, j) * root);
    }
    return new Factors(a, b, residual(m, a, b, in, out, r, scaling));
  }

  /** OLoRA: the first r columns of Q and rows of R of Wᵀ [out, in] = Q·R. */
  static Factors olora(float[] w, int in, int out, int r, double scaling) {
    check(in, out, r, "OLoRA");
    DMatrixRMaj m = matrix(w, in, out);
    DMatrixRMaj wt = CommonOps_DDRM.transpose(m, null);
    QRDecomposition<DMatrixRMaj> qr = DecompositionFactory_DDRM.qr(out, in);
    checkArgument(qr.decompose(wt), "OLoRA: the QR decomposition of a [%s, %s] weight failed", out, in);
    DMatrixRMaj q = qr.getQ(null, true); // [out, min]
    DMatrixRMaj rr = qr.getR(null, true); // [min, in]
    float[] a = new float[in * r];
    float[] b = new float[r * out];
    for (int k = 0; k < r; k++) {
      for (int i = 0; i < in; i++) a[i * r + k] = (float) rr.get(k, i);
      for (int j = 0; j < out; j++) b[k * out + j] = (float) q.get(j, k);
    }
    return new Factors(a, b, residual(m, a, b, in, out, r, scaling));
  }

  private static void check(int in, int out, int r, String method) {
    checkArgument(
        r <= Math.min(in, out),
        "%s: rank %s is larger than the weight [%s, %s] has; use a rank of at most %s",
        method, r, in, out, Math.min(in, out));
  }

  private static DMatrixRMaj matrix(float[] w, int rows, int cols) {
    DMatrixRMaj m = new DMatrixRMaj(rows, cols);
    for (int i = 0; i < w.length; i++) m.data[i] = w[i];
    return m;
  }

  /** W - s·A·B from the float A and B, rounded to float once. */
  private static float[] residual(DMatrixRMaj w, float[] a, float[] b, int in, int out, int r, double scaling) {
    DMatrixRMaj ab = new DMatrixRMaj(in, out);
    CommonOps_DDRM.mult(matrix(a, in, r), matrix(b, r, out), ab);
    DMatrixRMaj res = new DMatrixRMaj(in, out);
    CommonOps_DDRM.add(1.0, w, -scaling, ab, res);
    float[] out2 = new float[in * out];
    for (int i = 0; i < out2.length; i++) out2[i] = (float) res.data[i];
    return out2;
  }
}
