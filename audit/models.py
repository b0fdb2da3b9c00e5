"""The append-only audit log.

Rows here are never updated or deleted: the database itself rejects UPDATE, DELETE and
TRUNCATE on these tables (see ``audit/append_only.py`` and the migrations that install it).
Actors, cases and subjects are recorded by id and, for actors, by the username and role
they had at the time, rather than by foreign key, so an event outlives any change to the
rows it names.
"""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class Outcome(models.TextChoices):
    SUCCESS = "success", "Succeeded"
    DENIED = "denied", "Denied"
    FAILED = "failed", "Failed"


class AuditEventQuerySet(models.QuerySet):
    def touching_subject(self, subject_id: int) -> AuditEventQuerySet:
        return self.filter(subject_links__subject_id=subject_id)


class AuditEvent(models.Model):
    """One action on the service: who, what, when, from where, with what outcome.
    ``id`` is the commit-independent sequence number used for ordering and paging."""

    occurred_at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True)
    actor_role = models.CharField(max_length=20, blank=True)
    action = models.CharField(max_length=64)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    case_id = models.BigIntegerField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # Random salt of the commitment through which the personal fields (username, address,
    # user agent, request id, payload) enter the Merkle leaf; see audit/leaves.py.
    commitment_salt = models.BinaryField(max_length=16, null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["actor_username", "id"], name="audit_actor_seq"),
            # An actor's events in a date range, without reading the actor's whole history:
            # with the id in the index, the range's ids come from the index alone and only the
            # page's rows are read (see selectors.audit_events).
            models.Index(fields=["actor_username", "occurred_at", "id"], name="audit_actor_time_seq"),
            models.Index(fields=["action", "id"], name="audit_action_seq"),
            models.Index(fields=["target_type", "target_id", "id"], name="audit_target_seq"),
            models.Index(fields=["case_id", "id"], name="audit_case_seq"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} by {self.actor_username or '-'}"


class AuditSubjectLink(models.Model):
    """Each subject (person) an event touched, so that a person's access history finds
    every read of their records, including lists that named many people."""

    # Indexed by the unique (event, subject_id) constraint, which leads with the event.
    event = models.ForeignKey(AuditEvent, on_delete=models.PROTECT, related_name="subject_links", db_index=False)
    subject_id = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "subject_id"], name="audit_subject_link_once")]
        indexes = [models.Index(fields=["subject_id", "event"], name="audit_subject_seq")]


class AuditLeaf(models.Model):
    """The event's place in the Merkle tree. Indices run from 0 without gaps, in the
    order the integrator found the events committed. ``commitment`` is kept here so the
    leaf can be rebuilt, and the tree verified, even after the personal fields are erased."""

    index = models.BigIntegerField(primary_key=True)
    event = models.OneToOneField(AuditEvent, on_delete=models.PROTECT, related_name="leaf")
    commitment = models.BinaryField(max_length=32)
    sequenced_at = models.DateTimeField()


class AuditTreeNode(models.Model):
    """The hash of one perfect subtree: 2**level leaves starting at index * 2**level
    (level 0 holds the leaf hashes). With every such node stored, any proof is a handful
    of primary-key reads. ``id`` packs (level, index) as ``level << 48 | index``."""

    id = models.BigIntegerField(primary_key=True)
    hash = models.BinaryField(max_length=32)


class AuditLogState(models.Model):
    """The integrator's bookkeeping: one row, locked while the tree is extended, so two
    integrators can never append the same index twice or fork the tree."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    tree_size = models.BigIntegerField(default=0)
    root = models.BinaryField(max_length=32)
    # Highest event id sequenced so far (new events are found above it cheaply).
    max_event_id = models.BigIntegerField(default=0)
    # Every event at or below this id is sequenced or never committed: the periodic sweep
    # for events that committed out of id order starts here.
    scan_from_event_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class AuditCheckpoint(models.Model):
    """A signed statement of the tree's size and root (C2SP tlog-checkpoint in a signed
    note). Each is checked consistent with the one before it before it is signed."""

    tree_size = models.BigIntegerField(unique=True)
    root = models.BinaryField(max_length=32)
    note = models.TextField()
    key_id = models.CharField(max_length=8)
    signed_at = models.DateTimeField(db_index=True)


class Heartbeat(models.Model):
    """When periodic work last ran, by name. ``beat``: the audit log's sweep, which Celery
    beat sends every 2 seconds and a worker runs, so a recent one shows that beat, the
    broker and a worker all work; ``/healthz`` reports it (audit/health.py). Kept in the
    database, so it survives the broker's loss. Bookkeeping, updated in place."""

    name = models.CharField(max_length=40, primary_key=True)
    at = models.DateTimeField()
