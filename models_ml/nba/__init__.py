"""Next-best-action propensity model: features in, gated MLflow champion out, batch scores and reasons.

See ``models_ml/README.md`` for the modules and the decision flow.
"""

from models_ml.nba.evaluate import HoldoutEvaluation, evaluate_holdout, popularity_scores, ranking_metrics
from models_ml.nba.features import Encoding, Feature, encode, fit_encoding
from models_ml.nba.gate import GateConfig, PromotionDecision
from models_ml.nba.pipeline import TrainingOutcome, apply_decision, decide, train_evaluate_register
from models_ml.nba.scoring import (
                                   POLICY_FALLBACK,
                                   POLICY_MODEL,
                                   Champion,
                                   ChampionUnavailable,
                                   explain,
                                   load_champion,
                                   score,
)
from models_ml.nba.tracking import MODEL_NAME, configure, tracking_uri
from models_ml.nba.train import Split, TrainConfig, TrainedModel, encoding_of, predict, time_split, train_model

__all__ = [
    "MODEL_NAME", "POLICY_FALLBACK", "POLICY_MODEL", "Champion", "ChampionUnavailable", "Encoding", "Feature",
    "GateConfig", "HoldoutEvaluation", "PromotionDecision", "Split", "TrainConfig", "TrainedModel",
    "TrainingOutcome", "apply_decision", "configure", "decide", "encode", "encoding_of", "evaluate_holdout",
    "explain", "fit_encoding", "load_champion", "popularity_scores", "predict", "ranking_metrics", "score",
    "time_split", "tracking_uri", "train_evaluate_register", "train_model",
]
