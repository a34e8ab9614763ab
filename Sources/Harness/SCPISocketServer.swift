import AcceptanceCore
import Foundation
import InstrumentCore
import NIOCore
import NIOPosix
import Simulation

/// A simulated instrument served as raw SCPI over TCP on loopback (as LAN instruments serve port 5025): one message
/// per line in, one answer line out for each query. `acceptance simulate` serves its bench this way so an emulated
/// USB device (umockdev) can forward USBTMC messages to the same instrument model the in-memory runs use.
public final class SCPISocketServer: Sendable {
    public let instrument: SimulatedInstrument
    public let port: Int
    let channel: any Channel
    let group: MultiThreadedEventLoopGroup

    private init(instrument: SimulatedInstrument, port: Int, channel: any Channel, group: MultiThreadedEventLoopGroup) {
        self.instrument = instrument
        self.port = port
        self.channel = channel
        self.group = group
    }

    /// Serves `instrument` on 127.0.0.1:`port` (0: a free port).
    public static func start(
        _ instrument: SimulatedInstrument, port: Int
    ) async throws(HarnessError) -> SCPISocketServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 16)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(SCPILineDecoder()))
                        try channel.pipeline.syncOperations.addHandler(SCPIMessageHandler(instrument: instrument))
                    }
                }
                .bind(host: "127.0.0.1", port: port).get()
            return SCPISocketServer(
                instrument: instrument, port: channel.localAddress?.port ?? port, channel: channel, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw .unsupported("cannot serve simulated instrument '\(instrument.name)' on port \(port): \(error)")
        }
    }

    public func shutdown() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

/// Splits the byte stream into lines (an SCPI message ends in a newline), at most 64 KiB each.
struct SCPILineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > 65_536 { context.close(promise: nil) }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        let line = buffer.readString(length: length) ?? ""
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(wrapInboundOut(line.trimmingCharacters(in: .init(charactersIn: "\r"))))
        return .continue
    }
}

/// Answers each message from the instrument model; a silent instrument answers nothing, a gone one hangs up.
final class SCPIMessageHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = String
    typealias OutboundOut = ByteBuffer

    let instrument: SimulatedInstrument

    init(instrument: SimulatedInstrument) {
        self.instrument = instrument
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        if let problem = instrument.availability(at: instrument.clock.now().seconds) {
            if problem.kind == .gone { context.close(promise: nil) }
            return
        }
        guard let answer = instrument.handle(line), SCPIMessage(line).expectsAnswer else { return }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer + "\n")), promise: nil)
    }
}
