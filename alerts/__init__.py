"""Alert rules as code: YAML rules evaluated against the analytics, with state and notifications.

The pieces, each in its own module:

* `rules` (with `rule_types` and `rules_check`): the YAML rule schema and its validation,
  every error naming the rule and the field; `default_rules.yaml` ships with the package;
* `evaluate` (with `cluster_history`): each rule's value per scope value at an instant,
  through `stepscope.analytics` only;
* `state`: the pending → firing → resolved machine and its SQLite database;
* `silences`: silences with an expiry that hold back notifications;
* `notify`: channels (webhook, stdout, JSON Lines) and the delivery outbox;
* `engine`: one evaluation round, and `AlertRunner`, the continuous runner (`alerts run`,
  or `start_background()` inside `serve`);
* `replay`: the stateless check (`alerts check`, a CI gate) and replays of history;
* `status`: current and recent alerts as DataFrames for the dashboard.
"""
