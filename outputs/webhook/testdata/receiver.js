// A webhook receiver on Node's http module for the receiver-matrix test: it appends the
// uuid of every event it receives (CORRUPT for a body that is not an event) to the file
// named by its second argument, answers 200, and closes keep-alive connections idle 300 ms.
const http = require("http");
const fs = require("fs");

const [port, path] = process.argv.slice(2);
const fd = fs.openSync(path, "a");
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let uid = "CORRUPT";
    try {
      uid = JSON.parse(Buffer.concat(chunks).toString()).uuid || "CORRUPT";
    } catch (e) {}
    fs.writeSync(fd, uid + "\n");
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end("{}");
  });
});
server.keepAliveTimeout = 300;
server.listen(Number(port), "127.0.0.1");
