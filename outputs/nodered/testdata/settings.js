// Node-RED settings of saker's integration test (outputs/nodered): the flow in flows.json,
// on 127.0.0.1 only, editor and admin API off, http in nodes behind basic authentication
// u / p (the bcrypt hash of "p"), as falcosidekick's recordings were configured.
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.SAKER_NODERED_PORT, 10),
    userDir: process.env.SAKER_NODERED_DIR,
    flowFile: "flows.json",
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeAuth: {user: "u", pass: "$2b$08$QsNtA2IGIOwIUSkklmESz.62wgNYeFbTejM4gxPyV4Q0kW5Zny0R."},
    diagnostics: {enabled: false},
    telemetry: {enabled: false},
    logging: {console: {level: "warn", metrics: false, audit: false}},
};
