"""Detect a spike, a level shift and a broken relation between two sensors with the default detector.

Run: ``python examples/anomaly_detection.py`` (about a minute on a laptop CPU: 20 s of training,
then scoring).
"""

import numpy as np
import pandas as pd

from diffimpute.metrics.anomaly import auc_pr, f1_point, vus_pr
from diffimpute.tasks.anomaly import ImDiffusionDetector

rng = np.random.default_rng(0)
phase = 2 * np.pi * np.arange(1200) / 24
values = np.stack([np.sin(phase), 2 * np.sin(phase), 3 * np.cos(phase)], axis=1)
values += 0.05 * rng.standard_normal(values.shape)
frame = pd.DataFrame(values, index=pd.date_range("2024-01-01", periods=1200, freq="h"), columns=["a", "b", "c"])
train, test = frame.iloc[:960], frame.iloc[960:].copy()
labels = np.zeros(len(test), dtype=int)
test.iloc[60, 1] += 4.0  # a spike in one sensor
test.iloc[120:140, 2] += 2.0  # a level shift in another
test.iloc[180:210, 1] *= -1  # b turns against a: each sensor alone still looks normal
labels[60], labels[120:140], labels[180:210] = 1, 1, 1

detector = ImDiffusionDetector(random_state=0).fit(train)  # library defaults: 100 training steps
scores = detector.anomaly_score(test)  # a Series on test's index, higher = more anomalous
flags = detector.predict(test)  # 0/1, threshold fitted on held-out training rows (no labels)
print(f"window {detector.window_}, {detector.network_passes_per_timestamp():.0f} network passes per row")
print(f"AUC-PR {auc_pr(labels, scores):.3f}, VUS-PR {vus_pr(labels, scores):.3f}, "
      f"F1 with the label-free threshold {f1_point(labels, flags).f1:.3f}")
