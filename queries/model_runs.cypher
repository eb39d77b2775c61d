// name: model_runs
// description: Trained models (ModelRun): task, model, setting, split, headline test metrics next to the best baseline, predictions written.
MATCH (r:ModelRun)
OPTIONAL MATCH ()-[p:PREDICTED_MOA|PREDICTED_TARGET]->() WHERE p.run = r.id
WITH r, count(p) AS predictions
RETURN r.id AS id, r.task AS task, r.model AS model, r.setting AS setting, r.split_method AS split,
       r.seeds AS seeds, r.val_metric AS metric, r.test_metric_mean AS test_mean, r.test_metric_std AS test_std,
       r.best_baseline AS best_baseline, r.best_baseline_mean AS baseline_mean, predictions,
       toString(r.created) AS created
ORDER BY created DESC, id
