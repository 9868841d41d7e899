"""probe: per-model fixed costs of a tiny test model (build, compile+trace, epochs, predict)."""
import time
import numpy as np, keras
from src.config import ROOT
from src.data.load import load_digits
from src.params import default_params
from src.train.device import configure_device, reset_keras
from src.model.cnn import build_model
from src.train.fit import fit_model
from src.train.ensemble import predict_proba

configure_device()
data = load_digits(ROOT / "input" / "sample")
x, y = data.x_train[:600], data.y_train[:600]
p = {**default_params("cnn"), "filters": 8}
for i in range(3):
    t0 = time.perf_counter(); reset_keras(); t1 = time.perf_counter()
    keras.utils.set_random_seed(i); m = build_model(p, 10); t2 = time.perf_counter()
    class T(keras.callbacks.Callback):
        def on_epoch_end(s, e, logs=None): s.__dict__.setdefault("t", []).append(time.perf_counter())
    cb = T()
    fit_model(m, p, (x[:400], y[:400]), (x[400:].astype("float32"), y[400:]), epochs=3, patience=10,
              augment="affine", seed=i, callbacks=[cb], verbose=0)
    t3 = time.perf_counter()
    predict_proba(m, x[:300].astype("float32")); t4 = time.perf_counter()
    predict_proba(m, x[:300].astype("float32")); t5 = time.perf_counter()
    e = np.diff([t2] + cb.t)
    print(f"reset {t1-t0:.2f}s build {t2-t1:.2f}s epochs {' '.join(f'{v:.2f}' for v in e)} after-fit {t3-cb.t[-1]:.2f}s predict1 {t4-t3:.2f}s predict2 {t5-t4:.2f}s", flush=True)
