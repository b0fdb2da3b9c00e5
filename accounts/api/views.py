"""Sign-in, sign-out, who am I, and my teams."""

from __future__ import annotations

from django.contrib.auth import logout
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiToken
from accounts.services import login_attempt_start, session_logout_record, token_issue, token_revoke
from audit.services import AuditContext, audit_record
from evidence_service.api.errors import Unauthenticated
from evidence_service.api.schema import ErrorSerializer


class TeamOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class TokenCreateApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class Input(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=256, trim_whitespace=False)

    class Output(serializers.Serializer):
        token = serializers.CharField()
        expires_at = serializers.DateTimeField()

    @extend_schema(
        request=Input,
        responses={
            200: Output,
            # Documented here: the operation takes no credentials, so the shared 401 is not added.
            401: OpenApiResponse(ErrorSerializer, description="Wrong username or password, or an inactive account."),
            429: OpenApiResponse(
                ErrorSerializer,
                description="Too many failed sign-in attempts for this username or from this address; "
                "the password was not checked. `Retry-After` gives the seconds to wait.",
            ),
        },
        auth=[],
        operation_id="auth_token_create",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        ctx = AuditContext.from_request(request)
        # Two transactions, as for the session sign-in (accounts/views.py): the attempt is
        # counted and committed first (429 over a limit, the password unchecked), then the
        # password is checked and the token issued.
        attempt = login_attempt_start(ctx=ctx, username=data.validated_data["username"], method="token")
        try:
            raw, token = token_issue(ctx=ctx, attempt=attempt, **data.validated_data)
        except Unauthenticated:
            raise  # a wrong password: the attempt stays counted as a failure
        except BaseException:
            attempt.release()
            raise
        return Response(self.Output({"token": raw, "expires_at": token.expires_at}).data)


class LogoutApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        ctx = AuditContext.from_request(request)
        if isinstance(request.auth, ApiToken):
            token_revoke(ctx=ctx, token=request.auth)
        else:
            session_logout_record(ctx=ctx)
            logout(request._request)
        return Response(status=204)


class MeApi(APIView):
    class Output(serializers.Serializer):
        username = serializers.CharField()
        full_name = serializers.CharField(help_text="Empty when none is recorded.")
        email = serializers.CharField(help_text="Where notifications go; empty when none is recorded (none are sent).")
        grade = serializers.CharField(help_text="An officer's post or grade; empty when none is recorded.")
        role = serializers.CharField()
        teams = TeamOutput(many=True)

    @extend_schema(responses=Output)
    def get(self, request):
        user = request.user
        return Response(
            self.Output(
                {
                    "username": user.username,
                    "full_name": user.get_full_name(),
                    "email": user.email,
                    "grade": user.grade,
                    "role": user.role,
                    "teams": user.teams.all(),
                }
            ).data
        )


class TeamListApi(APIView):
    @extend_schema(responses=TeamOutput(many=True))
    def get(self, request):
        with transaction.atomic():
            teams = list(request.user.teams.all())
            audit_record(
                ctx=AuditContext.from_request(request),
                action="team.list",
                payload={"team_ids": [team.pk for team in teams]},
            )
        return Response(TeamOutput(teams, many=True).data)
