"""engine-cleanup of proxies deployed with Ansible: remove them from the recorded machines, then the
engine's records of them (the deployment record and answers, their requests and certificates, the
wheelhouse cache). A host that cannot be cleaned fails the run before any local file is removed, so the
record stays and the next cleanup reaches every host again (removal is idempotent)."""
from __future__ import annotations

from pathlib import PurePosixPath

from ovcommon import paths
from ovsetup import deploy, names
from ovsetup.core.errors import SetupError
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Stage
from ovsetup.core.transaction import FileRemove
from ovsetup.hosttool import proxy_request

REMOVE_WSP = "OVESETUP_REMOVE/removeWsp"


class RemoveDeployedPlugin(Plugin):
    record: deploy.Deployment | None = None

    @event(Stage.SETUP)
    def read_record(self) -> None:
        self.record = deploy.load_record(self.context.root)

    @event(Stage.MISC, name=names.WSP_REMOVE_DEPLOYED, after=(names.WSP_REMOVE,),
           condition=lambda self: bool(self.env[REMOVE_WSP]) and self.record is not None)
    def remove(self) -> None:
        root, record = self.context.root, self.record
        assert record is not None
        hosts = sorted(set(record.status) | {t.fqdn for t in record.targets})
        self.log.info("Removing the WebSocket Proxy from %s with Ansible", ", ".join(hosts))
        artifacts = deploy.artifacts_dir(root, self.context.log_file, "cleanup")
        result = deploy.remove(record, root=root, artifacts=artifacts, progress=self.log.info)
        if result.failed or not result.hosts:
            failed = result.report_failures(self.log)
            raise SetupError(f"the WebSocket Proxy could not be removed from {failed}; the Ansible artifacts "
                             f"are in {result.artifacts}")
        targets: list[PurePosixPath] = [paths.DEPLOY_RECORD, paths.DEPLOY_CONFIG]
        for host in hosts:
            targets += [paths.REQUESTS_DIR / f"{proxy_request(host)}.req",
                        paths.PKI_DIR / "certs" / f"{proxy_request(host)}.cer"]
        wheels = root.path(deploy.WHEELHOUSE_DIR)
        if wheels.is_dir():
            targets += [deploy.WHEELHOUSE_DIR / p.name for p in wheels.iterdir() if p.is_file()]
        for target in targets:
            if root.path(target).is_file():
                self.transaction.append(FileRemove(root.path(target), str(target)))

    @event(Stage.CLOSEUP, after=(names.SUMMARY_START,), before=(names.SUMMARY_END,),
           condition=lambda self: bool(self.env[REMOVE_WSP]) and self.record is not None)
    def summary(self) -> None:
        assert self.record is not None
        self.dialog.note("WebSocket Proxy removed from " + ", ".join(sorted(self.record.status)))


PLUGINS = (RemoveDeployedPlugin,)
