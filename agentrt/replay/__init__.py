"""Record and replay: every model response is kept; a run can be re-run from its recordings.

At the model call, the plan node records the response in model_calls (with a digest of
the messages sent). ``replay_run`` re-runs a run in a scratch database with today's code
and policy: the model's answers come from model_calls (``answers``), a side-effecting
tool's result or failure from the ledger, any other tool's from the outcome the run
checkpointed after the call, an irreversible tool's preview from its own prepare hook
(which has no side effect by contract) (``recording``). Gates are answered as the run's
were: decided as recorded, expired or escalated where the run's were (``gates``).
Nothing real is called and the run's own database is not written.

The replay's event log is compared with the run's (``report``): it says "identical" or
names the first divergence, e.g. "step 2.0: policy now requires approval for
'issue_refund'", or a decision today's checks refuse.
"""

from agentrt.replay.answers import recorded_model
from agentrt.replay.report import Replayed, ReplayReport
from agentrt.replay.rerun import replay_logs, replay_run

__all__ = ["ReplayReport", "Replayed", "recorded_model", "replay_logs", "replay_run"]
