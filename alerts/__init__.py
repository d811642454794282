"""Alert rules as code: YAML rules evaluated against the analytics, with state and notifications.

The pieces, each in its own module:

* `rules`: the YAML rule schema and its validation (every error names the rule and field);
* `evaluate`: computes each rule's metric per scope value through `stepscope.analytics`;
* `state`: the pending → firing → resolved machine and its SQLite database;
* `silences`: silences with an expiry that hold back notifications;
* `notify`: channels (webhook, stdout, JSON Lines) and the delivery outbox;
* `engine`: one evaluation round tying these together, replays and the continuous runner.
"""
