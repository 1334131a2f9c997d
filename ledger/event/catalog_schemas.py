"""The payload schemas of the event catalog as plain pydantic-core schemas (generated).

Written by ``python -m scripts.gen_catalog_schemas`` from the models of ``ledger.event.catalog``:
do not edit; change a model, then regenerate (a test fails until then). ``SCHEMAS`` maps each
catalog type to the schema of its payload (without the ``type`` key) for
``pydantic_core.SchemaValidator``, so reading commands validate payloads, with the same verdicts
and messages as the models, without importing pydantic (``ledger.event.payload_check``).
"""

# fmt: off
from __future__ import annotations

from typing import Any

from ledger.event.payload_rules import model_input, rfc3339_time

CATALOG_TYPES: tuple[str, ...] = (
    'ledger.created',
    'key.registered',
    'key.revoked',
    'policy.set',
    'agent.registered',
    'run.submitted',
    'run.planned',
    'run.approved',
    'run.rejected',
    'capability.granted',
    'run.started',
    'tool.called',
    'tool.completed',
    'llm.usage',
    'decision.recorded',
    'guardrail.triggered',
    'run.completed',
    'run.failed',
    'run.cancelled',
    'feedback.quality',
    'correction.recorded',
    'tier.promoted',
    'tier.demoted',
    'tier.revoked',
)
"""Every type of the v1 catalog, in catalog order."""

TIME_FIELDS: dict[str, tuple[str, ...]] = {
    'run.approved': ('expires_at',),
    'capability.granted': ('expires_at',),
}
"""Event type → its payload's time fields (top level), stored in ``ts`` form."""

SCHEMAS: dict[str, dict[str, Any]] = {
    'ledger.created': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('LedgerCreated')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['ledger.created']},
                        'default': 'ledger.created',
                    },
                    'required': False,
                },
                'origin': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
                'key': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'function-before',
                        'function': {'type': 'no-info', 'function': model_input('KeyInfo')},
                        'schema': {
                            'type': 'typed-dict',
                            'fields': {
                                'key_id': {
                                    'type': 'typed-dict-field',
                                    'schema': {'type': 'str', 'pattern': '^[0-9a-f]{32}$'},
                                    'required': True,
                                },
                                'name': {
                                    'type': 'typed-dict-field',
                                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                                    'required': True,
                                },
                                'public_key': {
                                    'type': 'typed-dict-field',
                                    'schema': {'type': 'str', 'pattern': '^[A-Za-z0-9+/]{43}=$'},
                                    'required': True,
                                },
                                'role': {
                                    'type': 'typed-dict-field',
                                    'schema': {
                                        'type': 'literal',
                                        'expected': ['governor', 'recorder', 'agent'],
                                    },
                                    'required': True,
                                },
                                'agent': {
                                    'type': 'typed-dict-field',
                                    'schema': {
                                        'type': 'default',
                                        'schema': {
                                            'type': 'nullable',
                                            'schema': {
                                                'type': 'str',
                                                'min_length': 1,
                                                'max_length': 256,
                                            },
                                        },
                                        'default': None,
                                    },
                                    'required': False,
                                },
                            },
                            'config': {
                                'extra_fields_behavior': 'forbid',
                                'strict': True,
                                'title': 'KeyInfo',
                            },
                        },
                    },
                    'required': True,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'LedgerCreated'},
        },
    },
    'key.registered': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('KeyRegistered')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'key_id': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'pattern': '^[0-9a-f]{32}$'},
                    'required': True,
                },
                'name': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
                'public_key': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'pattern': '^[A-Za-z0-9+/]{43}=$'},
                    'required': True,
                },
                'role': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'literal', 'expected': ['governor', 'recorder', 'agent']},
                    'required': True,
                },
                'agent': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {
                            'type': 'nullable',
                            'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                        },
                        'default': None,
                    },
                    'required': False,
                },
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['key.registered']},
                        'default': 'key.registered',
                    },
                    'required': False,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'KeyRegistered'},
        },
    },
    'key.revoked': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('KeyRevoked')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['key.revoked']},
                        'default': 'key.revoked',
                    },
                    'required': False,
                },
                'key_id': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'pattern': '^[0-9a-f]{32}$'},
                    'required': True,
                },
                'reason': {'type': 'typed-dict-field', 'schema': {'type': 'str'}, 'required': True},
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'KeyRevoked'},
        },
    },
    'policy.set': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('PolicySet')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['policy.set']},
                        'default': 'policy.set',
                    },
                    'required': False,
                },
                'version': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 1},
                    'required': True,
                },
                'digest': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'pattern': '^[0-9a-f]{64}$'},
                    'required': True,
                },
                'document': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'dict',
                        'keys_schema': {'type': 'str'},
                        'values_schema': {'type': 'any'},
                    },
                    'required': True,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'PolicySet'},
        },
    },
    'agent.registered': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('AgentRegistered')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['agent.registered']},
                        'default': 'agent.registered',
                    },
                    'required': False,
                },
                'owner': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
                'version': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str'},
                    'required': True,
                },
                'initial_tier': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0, 'le': 4},
                    'required': True,
                },
                'allowed_side_effects': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'list', 'items_schema': {'type': 'str'}},
                    'required': True,
                },
                'forbidden_actions': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'list', 'items_schema': {'type': 'str'}},
                    'required': True,
                },
                'confidence_threshold_bp': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0, 'le': 10000},
                    'required': True,
                },
            },
            'config': {
                'extra_fields_behavior': 'forbid',
                'strict': True,
                'title': 'AgentRegistered',
            },
        },
    },
    'run.submitted': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('RunSubmitted')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['run.submitted']},
                        'default': 'run.submitted',
                    },
                    'required': False,
                },
                'objective': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str'},
                    'required': True,
                },
                'user': {'type': 'typed-dict-field', 'schema': {'type': 'str'}, 'required': True},
                'risk': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'literal', 'expected': ['low', 'medium', 'high']},
                    'required': True,
                },
                'auto_approve': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'bool'},
                    'required': True,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'RunSubmitted'},
        },
    },
    'run.planned': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('RunPlanned')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['run.planned']},
                        'default': 'run.planned',
                    },
                    'required': False,
                },
                'steps': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'list',
                        'items_schema': {
                            'type': 'function-before',
                            'function': {'type': 'no-info', 'function': model_input('PlannedStep')},
                            'schema': {
                                'type': 'typed-dict',
                                'fields': {
                                    'tool': {
                                        'type': 'typed-dict-field',
                                        'schema': {
                                            'type': 'str',
                                            'min_length': 1,
                                            'max_length': 256,
                                        },
                                        'required': True,
                                    },
                                    'args_digest': {
                                        'type': 'typed-dict-field',
                                        'schema': {'type': 'str', 'pattern': '^[0-9a-f]{64}$'},
                                        'required': True,
                                    },
                                    'side_effect': {
                                        'type': 'typed-dict-field',
                                        'schema': {
                                            'type': 'str',
                                            'min_length': 1,
                                            'max_length': 256,
                                        },
                                        'required': True,
                                    },
                                    'reversible': {
                                        'type': 'typed-dict-field',
                                        'schema': {'type': 'bool'},
                                        'required': True,
                                    },
                                },
                                'config': {
                                    'extra_fields_behavior': 'forbid',
                                    'strict': True,
                                    'title': 'PlannedStep',
                                },
                            },
                        },
                    },
                    'required': True,
                },
                'risk': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'literal', 'expected': ['low', 'medium', 'high']},
                    'required': True,
                },
                'required_tier': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0, 'le': 4},
                    'required': True,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'RunPlanned'},
        },
    },
    'run.approved': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('RunApproved')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['run.approved']},
                        'default': 'run.approved',
                    },
                    'required': False,
                },
                'approver': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
                'mode': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'literal', 'expected': ['human', 'auto', 'council']},
                    'required': True,
                },
                'plan_digest': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'pattern': '^[0-9a-f]{64}$'},
                    'required': True,
                },
                'expires_at': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {
                            'type': 'nullable',
                            'schema': {
                                'type': 'function-after',
                                'function': {'type': 'no-info', 'function': rfc3339_time},
                                'schema': {'type': 'str'},
                            },
                        },
                        'default': None,
                    },
                    'required': False,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'RunApproved'},
        },
    },
    'run.rejected': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('RunRejected')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['run.rejected']},
                        'default': 'run.rejected',
                    },
                    'required': False,
                },
                'approver': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
                'mode': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'literal', 'expected': ['human', 'auto', 'council']},
                    'required': True,
                },
                'plan_digest': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'pattern': '^[0-9a-f]{64}$'},
                    'required': True,
                },
                'reason': {'type': 'typed-dict-field', 'schema': {'type': 'str'}, 'required': True},
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'RunRejected'},
        },
    },
    'capability.granted': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('CapabilityGranted')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['capability.granted']},
                        'default': 'capability.granted',
                    },
                    'required': False,
                },
                'tools': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'list', 'items_schema': {'type': 'str'}},
                    'required': True,
                },
                'capabilities': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'list', 'items_schema': {'type': 'str'}},
                    'required': True,
                },
                'expires_at': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {
                            'type': 'nullable',
                            'schema': {
                                'type': 'function-after',
                                'function': {'type': 'no-info', 'function': rfc3339_time},
                                'schema': {'type': 'str'},
                            },
                        },
                        'default': None,
                    },
                    'required': False,
                },
                'token_digest': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'pattern': '^[0-9a-f]{64}$'},
                    'required': True,
                },
            },
            'config': {
                'extra_fields_behavior': 'forbid',
                'strict': True,
                'title': 'CapabilityGranted',
            },
        },
    },
    'run.started': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('RunStarted')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['run.started']},
                        'default': 'run.started',
                    },
                    'required': False,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'RunStarted'},
        },
    },
    'tool.called': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('ToolCalled')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['tool.called']},
                        'default': 'tool.called',
                    },
                    'required': False,
                },
                'tool': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
                'args_digest': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'pattern': '^[0-9a-f]{64}$'},
                    'required': True,
                },
                'side_effect': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'ToolCalled'},
        },
    },
    'tool.completed': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('ToolCompleted')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['tool.completed']},
                        'default': 'tool.completed',
                    },
                    'required': False,
                },
                'tool': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
                'status': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'literal', 'expected': ['ok', 'error']},
                    'required': True,
                },
                'result_digest': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {
                            'type': 'nullable',
                            'schema': {'type': 'str', 'pattern': '^[0-9a-f]{64}$'},
                        },
                        'default': None,
                    },
                    'required': False,
                },
                'duration_ms': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0},
                    'required': True,
                },
                'failure_class': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {
                            'type': 'nullable',
                            'schema': {
                                'type': 'literal',
                                'expected': [
                                    'llm_timeout',
                                    'llm_error',
                                    'tool_error',
                                    'context_overflow',
                                    'rate_limit',
                                    'dependency_failed',
                                    'memory_corruption',
                                    'validation_error',
                                    'prompt_rejection',
                                    'unknown',
                                ],
                            },
                        },
                        'default': None,
                    },
                    'required': False,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'ToolCompleted'},
        },
    },
    'llm.usage': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('LlmUsage')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['llm.usage']},
                        'default': 'llm.usage',
                    },
                    'required': False,
                },
                'provider': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
                'model': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
                'tokens_in': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0},
                    'required': True,
                },
                'tokens_out': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0},
                    'required': True,
                },
                'cache_read_tokens': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0},
                    'required': True,
                },
                'cache_write_tokens': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0},
                    'required': True,
                },
                'cost_micro_usd': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0},
                    'required': True,
                },
                'wallclock_ms': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0},
                    'required': True,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'LlmUsage'},
        },
    },
    'decision.recorded': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('DecisionRecorded')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['decision.recorded']},
                        'default': 'decision.recorded',
                    },
                    'required': False,
                },
                'decision': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'literal',
                        'expected': [
                            'EXECUTE',
                            'SKIP',
                            'ESCALATE',
                            'INSUFFICIENT_INFORMATION',
                            'ERROR',
                        ],
                    },
                    'required': True,
                },
                'confidence_bp': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0, 'le': 10000},
                    'required': True,
                },
                'rationale': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str'},
                    'required': True,
                },
            },
            'config': {
                'extra_fields_behavior': 'forbid',
                'strict': True,
                'title': 'DecisionRecorded',
            },
        },
    },
    'guardrail.triggered': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('GuardrailTriggered')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['guardrail.triggered']},
                        'default': 'guardrail.triggered',
                    },
                    'required': False,
                },
                'kind': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
                'severity': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'literal', 'expected': ['info', 'warning', 'critical']},
                    'required': True,
                },
                'detail': {'type': 'typed-dict-field', 'schema': {'type': 'str'}, 'required': True},
            },
            'config': {
                'extra_fields_behavior': 'forbid',
                'strict': True,
                'title': 'GuardrailTriggered',
            },
        },
    },
    'run.completed': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('RunCompleted')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['run.completed']},
                        'default': 'run.completed',
                    },
                    'required': False,
                },
                'steps_completed': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0},
                    'required': True,
                },
                'outputs_digest': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {
                            'type': 'nullable',
                            'schema': {'type': 'str', 'pattern': '^[0-9a-f]{64}$'},
                        },
                        'default': None,
                    },
                    'required': False,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'RunCompleted'},
        },
    },
    'run.failed': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('RunFailed')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['run.failed']},
                        'default': 'run.failed',
                    },
                    'required': False,
                },
                'failure_class': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'literal',
                        'expected': [
                            'llm_timeout',
                            'llm_error',
                            'tool_error',
                            'context_overflow',
                            'rate_limit',
                            'dependency_failed',
                            'memory_corruption',
                            'validation_error',
                            'prompt_rejection',
                            'unknown',
                        ],
                    },
                    'required': True,
                },
                'message': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str'},
                    'required': True,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'RunFailed'},
        },
    },
    'run.cancelled': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('RunCancelled')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['run.cancelled']},
                        'default': 'run.cancelled',
                    },
                    'required': False,
                },
                'reason': {'type': 'typed-dict-field', 'schema': {'type': 'str'}, 'required': True},
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'RunCancelled'},
        },
    },
    'feedback.quality': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('FeedbackQuality')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['feedback.quality']},
                        'default': 'feedback.quality',
                    },
                    'required': False,
                },
                'score_bp': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0, 'le': 10000},
                    'required': True,
                },
                'by': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
            },
            'config': {
                'extra_fields_behavior': 'forbid',
                'strict': True,
                'title': 'FeedbackQuality',
            },
        },
    },
    'correction.recorded': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('CorrectionRecorded')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['correction.recorded']},
                        'default': 'correction.recorded',
                    },
                    'required': False,
                },
                'text': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1},
                    'required': True,
                },
                'topic': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {
                            'type': 'nullable',
                            'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                        },
                        'default': None,
                    },
                    'required': False,
                },
                'by': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'min_length': 1, 'max_length': 256},
                    'required': True,
                },
            },
            'config': {
                'extra_fields_behavior': 'forbid',
                'strict': True,
                'title': 'CorrectionRecorded',
            },
        },
    },
    'tier.promoted': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('TierPromoted')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'from_': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0, 'le': 4},
                    'required': True,
                    'validation_alias': 'from',
                },
                'to': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0, 'le': 4},
                    'required': True,
                },
                'reason': {'type': 'typed-dict-field', 'schema': {'type': 'str'}, 'required': True},
                'policy_version': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0},
                    'required': True,
                },
                'policy_digest': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'pattern': '^[0-9a-f]{64}$'},
                    'required': True,
                },
                'evidence': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'function-before',
                        'function': {'type': 'no-info', 'function': model_input('TierEvidence')},
                        'schema': {
                            'type': 'typed-dict',
                            'fields': {
                                'seq_from': {
                                    'type': 'typed-dict-field',
                                    'schema': {'type': 'int', 'ge': 0},
                                    'required': True,
                                },
                                'seq_to': {
                                    'type': 'typed-dict-field',
                                    'schema': {'type': 'int', 'ge': 0},
                                    'required': True,
                                },
                            },
                            'config': {
                                'extra_fields_behavior': 'allow',
                                'strict': True,
                                'title': 'TierEvidence',
                            },
                        },
                    },
                    'required': True,
                },
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['tier.promoted']},
                        'default': 'tier.promoted',
                    },
                    'required': False,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'TierPromoted'},
        },
    },
    'tier.demoted': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('TierDemoted')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'from_': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0, 'le': 4},
                    'required': True,
                    'validation_alias': 'from',
                },
                'to': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0, 'le': 4},
                    'required': True,
                },
                'reason': {'type': 'typed-dict-field', 'schema': {'type': 'str'}, 'required': True},
                'policy_version': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0},
                    'required': True,
                },
                'policy_digest': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'pattern': '^[0-9a-f]{64}$'},
                    'required': True,
                },
                'evidence': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'function-before',
                        'function': {'type': 'no-info', 'function': model_input('TierEvidence')},
                        'schema': {
                            'type': 'typed-dict',
                            'fields': {
                                'seq_from': {
                                    'type': 'typed-dict-field',
                                    'schema': {'type': 'int', 'ge': 0},
                                    'required': True,
                                },
                                'seq_to': {
                                    'type': 'typed-dict-field',
                                    'schema': {'type': 'int', 'ge': 0},
                                    'required': True,
                                },
                            },
                            'config': {
                                'extra_fields_behavior': 'allow',
                                'strict': True,
                                'title': 'TierEvidence',
                            },
                        },
                    },
                    'required': True,
                },
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['tier.demoted']},
                        'default': 'tier.demoted',
                    },
                    'required': False,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'TierDemoted'},
        },
    },
    'tier.revoked': {
        'type': 'function-before',
        'function': {'type': 'no-info', 'function': model_input('TierRevoked')},
        'schema': {
            'type': 'typed-dict',
            'fields': {
                'from_': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0, 'le': 4},
                    'required': True,
                    'validation_alias': 'from',
                },
                'to': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0, 'le': 4},
                    'required': True,
                },
                'reason': {'type': 'typed-dict-field', 'schema': {'type': 'str'}, 'required': True},
                'policy_version': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'int', 'ge': 0},
                    'required': True,
                },
                'policy_digest': {
                    'type': 'typed-dict-field',
                    'schema': {'type': 'str', 'pattern': '^[0-9a-f]{64}$'},
                    'required': True,
                },
                'evidence': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'function-before',
                        'function': {'type': 'no-info', 'function': model_input('TierEvidence')},
                        'schema': {
                            'type': 'typed-dict',
                            'fields': {
                                'seq_from': {
                                    'type': 'typed-dict-field',
                                    'schema': {'type': 'int', 'ge': 0},
                                    'required': True,
                                },
                                'seq_to': {
                                    'type': 'typed-dict-field',
                                    'schema': {'type': 'int', 'ge': 0},
                                    'required': True,
                                },
                            },
                            'config': {
                                'extra_fields_behavior': 'allow',
                                'strict': True,
                                'title': 'TierEvidence',
                            },
                        },
                    },
                    'required': True,
                },
                'type': {
                    'type': 'typed-dict-field',
                    'schema': {
                        'type': 'default',
                        'schema': {'type': 'literal', 'expected': ['tier.revoked']},
                        'default': 'tier.revoked',
                    },
                    'required': False,
                },
            },
            'config': {'extra_fields_behavior': 'forbid', 'strict': True, 'title': 'TierRevoked'},
        },
    },
}
"""Event type → the core schema of its payload model, without pydantic."""
