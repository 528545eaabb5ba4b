# SPDX-License-Identifier: GPL-2.0-only
"""One error type for everything a user can fix: it says where, what and what to do."""


class SeedchainError(Exception):
    """A problem the user can act on. Printed without a traceback.

    where: a file and line ("scenarios/x.yaml:12"), a layer ("layer 2"), or a tool.
    what:  what is wrong, in one sentence.
    hint:  what to do about it.
    """

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None,
                 transient: bool = False):
        self.what = what
        # transient: an infrastructure hiccup (a download, a QEMU launch) that may go
        # away if tried again; the runner retries those a bounded number of times.
        self.transient = transient
        self.where = where
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ScenarioError(SeedchainError):
    """A scenario file that cannot be loaded or does not validate."""


class ImageError(SeedchainError):
    """A kernel, package or initramfs that cannot be fetched or built."""


class QemuError(SeedchainError):
    """QEMU could not be started or controlled."""
