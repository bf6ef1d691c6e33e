"""This host's fully qualified name, asked when a certificate will be issued for it."""
from __future__ import annotations

from ovsetup import fqdn, names
from ovsetup.core.environment import EnvKey
from ovsetup.core.events import event
from ovsetup.core.plugin import Plugin
from ovsetup.core.stages import Stage


class HostnamePlugin(Plugin):
    KEYS = (
        EnvKey(names.FQDN, "str", answerfile=True, postinstall=True, summary="Host FQDN",
               validator=fqdn.syntax_problem,
               help="This host's fully qualified name: the proxy's certificate names it and browsers connect "
                    "to it. Asked when a certificate is issued, default this host's name."),
        EnvKey(names.ENGINE_FQDN, "str", answerfile=True, postinstall=True, validator=fqdn.syntax_problem,
               help="The engine's fully qualified name, for the engine certificate and ENGINE_FQDN; unset: "
                    "OVESETUP_CONFIG/fqdn (the engine runs on this machine)."),
        EnvKey(names.PKI_REQUIRED, "bool", default=False,
               help="Set by the run itself when a certificate will be issued (not an answer)."),
    )

    @event(Stage.CUSTOMIZATION, name=names.FQDN_CUSTOMIZATION,
           after=(names.WSP_CUSTOMIZATION, names.WSP_DEPLOY_CUSTOMIZATION),
           condition=lambda self: self.env[names.PKI_REQUIRED])
    def ask_fqdn(self) -> None:
        while self.env[names.FQDN] is None:
            answer = self.dialog.query(
                "OVESETUP_NETWORK_FQDN_this_host",
                "Host fully qualified DNS name of this server [@DEFAULT@]: ",
                env_key=names.FQDN, default=fqdn.default_fqdn())
            problem = fqdn.syntax_problem(answer)
            if problem and not self.dialog.accept_defaults:
                self.log.error("%s", problem)
                continue
            self.env.supply(names.FQDN, answer)
        if not fqdn.resolves(self.env[names.FQDN]):
            self.log.warning("Host name %s does not resolve here; browsers must be able to resolve it",
                             self.env[names.FQDN])
        if self.env[names.ENGINE_FQDN] is None:
            self.env[names.ENGINE_FQDN] = self.env[names.FQDN]  # the engine runs on this machine


PLUGINS = (HostnamePlugin,)
