import AcceptanceCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The line at a glance for its supervisor: one page, every bay's rack, step, progress and verdict, in letters big
/// enough to read across the room, reloading itself every two seconds (no script). `/status.json` is the same as data.
public enum LineStatusPage {
    public static func html(_ status: LineStatus?, source: String) -> String {
        func e(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        var out = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
            <title>\(e(status.map { "Line \($0.line)" } ?? "No line running"))</title>
            <style>
            body{font:28px/1.3 system-ui,sans-serif;margin:16px;background:#0d1117;color:#e6edf3}
            h1{font-size:36px;margin:0 0 12px} table{border-collapse:collapse;width:100%}
            th,td{padding:10px 14px;border-bottom:2px solid #30363d;text-align:left}
            th{font-size:20px;color:#8b949e} .bay{font-size:44px;font-weight:800}
            .PASS{background:#1a7f37;color:#fff} .FAIL{background:#cf222e;color:#fff} .ERROR{background:#9a6700;color:#fff}
            .ABORTED{background:#6e40c9;color:#fff} .running{color:#58a6ff} .small{font-size:18px;color:#8b949e}
            progress{width:220px;height:22px}
            </style></head><body>

            """
        guard let status else {
            return out + "<h1>No line is running</h1><p class=\"small\">(\(e(source)))</p></body></html>\n"
        }
        out +=
            "<h1>Line \(e(status.line)) · \(e(status.procedure))</h1>"
            + "<p class=\"small\">\(e(status.title)) · started \(e(status.started)) · updated \(e(status.updated))</p>\n"
            + "<table id=\"bays\"><tr><th>Bay</th><th>Rack</th><th>Step</th><th>Progress</th><th>Latest</th>"
            + "<th>Verdict</th></tr>\n"
        for bay in status.bays {
            let verdict = bay.verdict ?? bay.state.uppercased()
            var progress = "\(bay.stepNumber) of \(bay.stepCount) steps"
            if let elapsed = bay.elapsedSeconds, let total = bay.totalSeconds, total > 0 {
                progress =
                    "<progress value=\"\(Int(elapsed))\" max=\"\(Int(total))\"></progress><br>"
                    + "\(Int(elapsed)) / \(Int(total)) s"
            }
            if let run = bay.runSeconds {
                let estimate = bay.estimatedSeconds.map { " of ~" + LineLiveTable.minutesAndSeconds($0) } ?? ""
                progress +=
                    "<div class=\"small run\">run \(LineLiveTable.minutesAndSeconds(run))"
                    + "\(bay.state == "finished" ? "" : estimate)</div>"
            }
            out +=
                "<tr id=\"bay-\(bay.bay)\"><td class=\"bay\">\(bay.bay)</td>"
                + "<td>\(e(bay.rackSerial ?? "-"))<div class=\"small\">\(e(bay.station))"
                + "\(bay.simulated == true ? " · SIMULATED" : "")</div></td>"
                + "<td class=\"step\">\(e(bay.step ?? "-"))</td><td>\(progress)</td>"
                + "<td>\(e(bay.latest ?? ""))<div class=\"small\">\(e(bay.message ?? ""))</div></td>"
                + "<td class=\"verdict \(e(bay.verdict ?? "running"))\">\(e(verdict))</td></tr>\n"
        }
        return out + "</table></body></html>\n"
    }
}

/// Serves a line's status page and `/status.json` over HTTP, read from its status file on every request.
public final class LineStatusServer: Sendable {
    public let port: Int
    let channel: any Channel
    let group: MultiThreadedEventLoopGroup

    private init(port: Int, channel: any Channel, group: MultiThreadedEventLoopGroup) {
        self.port = port
        self.channel = channel
        self.group = group
    }

    /// Serves the status file at `path` on `host`:`port` (0: a free port).
    public static func start(path: String, host: String, port: Int) async throws(HarnessError) -> LineStatusServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 16)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(StatusHandler(path: path))
                    }
                }
                .bind(host: host, port: port).get()
            return LineStatusServer(port: channel.localAddress?.port ?? port, channel: channel, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw .unsupported("cannot serve the line status on \(host):\(port): \(error)")
        }
    }

    public func shutdown() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

final class StatusHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let path: String

    init(path: String) { self.path = path }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case let .head(request) = unwrapInboundIn(data) else { return }
        let status = LineStatus.read(path: path)
        let (code, type, body): (HTTPResponseStatus, String, String)
        switch request.uri.split(separator: "?").first.map(String.init) ?? "/" {
        case "/":
            (code, type, body) = (.ok, "text/html; charset=utf-8", LineStatusPage.html(status, source: path))
        case "/status.json":
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let json = status.flatMap { try? encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) }
            (code, type, body) =
                json.map { (.ok, "application/json", $0) } ?? (.notFound, "application/json", "{\"error\":\"no line\"}")
        default:
            (code, type, body) = (.notFound, "text/plain", "not found\n")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Connection", value: "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: code, headers: headers))),
            promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
