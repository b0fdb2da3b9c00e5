"""FieldsCopiedOnce: a serializer that copies its declared fields once per class must
validate exactly as DRF's own, instance after instance."""

import copy
import itertools

import pytest
from rest_framework import serializers

from cases.api.views import ViewingInput
from evidence_service.api.fields import FieldsCopiedOnce

# The same declared fields, deep-copied per instance as DRF does.
PlainViewingInput = type(
    "PlainViewingInput",
    (serializers.Serializer,),
    {name: copy.deepcopy(field) for name, field in ViewingInput._declared_fields.items()},
)

VALID = {
    "case": 1,
    "profile": 2,
    "purpose": "locate_person",
    "justification": "Checking the address",
    "access_method": "council_overt_account",
    "interaction": "none",
    "information_recorded": "",
    "third_party_information": "",
}
VARIANTS = [
    {},
    {"case": "x"},
    {"case": -1, "profile": None},
    {"purpose": "snooping"},
    {"justification": ""},
    {"justification": "y" * 10001},
    {"viewed_at": "2026-01-02T03:04:05Z", "late_entry_reason": "Forgot"},
    {"viewed_at": "yesterday"},
    {"authorisation": 7},
    {"authorisation": None},
    {"external_authority": {"kind": "police", "reference": "REF-1"}},
    {"external_authority": {"kind": "nonsense"}},
    {"external_authority": None},
    {"external_authority": "text"},
    {"purpose_detail": 5, "interaction": ["none"]},
]


def outcome(serializer_class, data):
    serializer = serializer_class(data=data)
    valid = serializer.is_valid()
    return valid, serializer.errors, dict(serializer.validated_data) if valid else None


@pytest.mark.parametrize("variant", VARIANTS)
def test_it_validates_as_a_plain_serializer(variant):
    data = {**VALID, **variant}
    assert outcome(ViewingInput, data) == outcome(PlainViewingInput, data)
    missing = {key: value for key, value in data.items() if key not in variant or variant[key] is not None}
    missing.pop("purpose", None)
    assert outcome(ViewingInput, missing) == outcome(PlainViewingInput, missing)


def test_instances_do_not_share_what_they_were_given():
    inputs = [{**VALID, **variant} for variant in VARIANTS]
    serializers_made = [ViewingInput(data=data) for data in inputs]
    for serializer in itertools.chain(serializers_made, reversed(serializers_made)):
        serializer.is_valid()
    for serializer, data in zip(serializers_made, inputs, strict=True):
        valid, errors, validated = outcome(PlainViewingInput, data)
        assert serializer.errors == errors
        if valid:
            assert dict(serializer.validated_data) == validated
        assert all(field.parent is serializer for field in serializer.fields.values())


def test_fields_with_an_inner_field_are_refused():
    class Listing(FieldsCopiedOnce, serializers.Serializer):
        ids = serializers.ListField(child=serializers.IntegerField())

    with pytest.raises(TypeError, match="Listing.ids"):
        Listing(data={"ids": [1]}).is_valid()
