import NIOCore
import VaultProtocol

/// A request on its way out, with the promise its answer will fulfil.
struct OutgoingRequest: Sendable {
    var line: ByteBuffer
    var expectedId: Int64
    var promise: EventLoopPromise<JSONValue>
}

/// Splits the daemon's answers at `\n`. Answers can be large (`vault.list` of 1,000 credentials
/// with metadata), so the bound is generous but still a bound.
struct ResponseLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    static let maximumLineBytes = 64 << 20

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > Self.maximumLineBytes { throw VaultConnectionError.protocolViolation("answer line too long") }
            return .needMoreData
        }
        let line = buffer.readSlice(length: newline - buffer.readerIndex)!
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }
}

/// Matches answers to requests. The daemon answers in request order on one connection, so a FIFO
/// of promises suffices; the id of every answer is still checked against the request's.
final class ClientChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = OutgoingRequest
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<(id: Int64, promise: EventLoopPromise<JSONValue>)>()
    private let socketPath: String

    init(socketPath: String) {
        self.socketPath = socketPath
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        waiting.append((request.expectedId, request.promise))
        context.write(wrapOutboundOut(request.line), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(line.readableBytesView, maximumDepth: 512)
        } catch {
            failAll(VaultConnectionError.protocolViolation("the daemon sent a line that is not JSON"))
            context.close(promise: nil)
            return
        }
        guard let (expected, promise) = waiting.popFirst() else {
            // Answers with no request: an error the daemon could not tie to a request (id null).
            return
        }
        if case .object(let object) = parsed, let id = object["id"], id != .null, id.int64Value != expected {
            promise.fail(VaultConnectionError.protocolViolation("the daemon answered request \(expected) with another id"))
            failAll(VaultConnectionError.protocolViolation("answers out of order"))
            context.close(promise: nil)
            return
        }
        promise.succeed(parsed)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(VaultConnectionError.connectionClosed(socketPath))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: Error) {
        while let (_, promise) = waiting.popFirst() { promise.fail(error) }
    }
}
