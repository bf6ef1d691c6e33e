"""Names of events that plugins of several groups order themselves against."""
SUMMARY_START = "osetup.dialog.titles.summary.start"
SUMMARY_END = "osetup.dialog.titles.summary.end"
PREVIEW = "osetup.dialog.preview"
ANSWER_FILE = "osetup.core.answerfile"
WSP_CUSTOMIZATION = "setup.config.websocket-proxy.customization"
WSP_DEPLOY_CUSTOMIZATION = "setup.config.websocket-proxy.deploy.customization"
FQDN_CUSTOMIZATION = "osetup.network.fqdn.customization"
WSP_REMOVE_CUSTOMIZATION = "osetup.remove.websocket-proxy.customization"
WSP_REMOVE = "osetup.remove.websocket-proxy"  # MISC of engine-cleanup: local files and the option
# MISC of engine-cleanup, after WSP_REMOVE: proxies deployed with Ansible, removed from their machines.
WSP_REMOVE_DEPLOYED = "osetup.remove.websocket-proxy.deployed"
PKI_AVAILABLE = "osetup.pki.ca.available"
PKI_RENEW_LOCAL = "osetup.pki.renew"  # MISC: the CA and engine certificates, before PKI_AVAILABLE

# Environment keys shared by several plugins; each is declared in exactly one plugin's KEYS.
PKI_REQUIRED = "OVESETUP_PKI/required"
PKI_RENEW = "OVESETUP_PKI/renew"
FQDN = "OVESETUP_CONFIG/fqdn"
ENGINE_FQDN = "OVESETUP_ENGINE_CONFIG/fqdn"
WSP_CONFIG = "OVESETUP_CONFIG/websocketProxyConfig"
WSP_PORT = "OVESETUP_CONFIG/websocketProxyPort"
DB_HOST = "OVESETUP_DB/host"
DB_PORT = "OVESETUP_DB/port"
DB_USER = "OVESETUP_DB/user"
DB_PASSWORD = "OVESETUP_DB/password"
DB_DATABASE = "OVESETUP_DB/database"
DB_SECURED = "OVESETUP_DB/secured"
