"""Facebook ignores dots in usernames (``bea.king.7`` is ``beaking7``), so a Facebook
profile's handle is now kept without them (``cases.profiles``). Existing handles are
recomputed where that is safe. Where two existing profiles turn out to be one account
(``bea.king.7`` and ``beaking7``) neither is changed or merged: each has its own looks, and
possibly its own person, which an officer must reconcile; the migration names them.
Nothing is lost either way."""

from django.db import migrations


def drop_dots(apps, schema_editor):
    Profile = apps.get_model("cases", "Profile")
    dotted = Profile.objects.filter(platform="facebook", handle__contains=".").order_by("id")
    for profile in dotted:
        handle = profile.handle.replace(".", "")
        if not handle:
            continue
        clash = Profile.objects.filter(platform="facebook", handle=handle).exclude(pk=profile.pk).first()
        if clash is not None:
            print(
                f"\n  cases.0006: Facebook profile {profile.pk} ({profile.handle!r}, subject {profile.subject_id}) "
                f"is the same account as profile {clash.pk} ({clash.handle!r}, subject {clash.subject_id}); "
                "both are kept unchanged: reconcile them."
            )
            continue
        Profile.objects.filter(pk=profile.pk).update(handle=handle, url=f"https://www.facebook.com/{handle}")


class Migration(migrations.Migration):
    dependencies = [("cases", "0006_identity_and_consent_team")]

    operations = [migrations.RunPython(drop_dots, migrations.RunPython.noop, elidable=False)]
