import NIOCore

/// One frame of the wire protocol: a line without its terminator, or the news that a line
/// exceeded the limit (after which the connection is answered once and closed).
enum LineFrame {
    case line(ByteBuffer)
    case tooLong
}

/// Splits the byte stream at `\n` (dropping a preceding `\r`), bounded by `maxLineBytes`.
///
/// It never holds more than the limit (plus one read's worth in NIO's accumulation buffer) of an
/// unfinished line: once a line is known to be too long, everything up to the close is discarded
/// unread. `scanned` remembers how far a partial line was already searched, so a line arriving in
/// many small reads costs O(n), not O(n^2).
struct LineFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = LineFrame

    let maxLineBytes: Int
    private var scanned = 0
    private var discarding = false

    init(maxLineBytes: Int) {
        self.maxLineBytes = maxLineBytes
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if discarding {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        let view = buffer.readableBytesView
        guard let newline = view[(view.startIndex + scanned)...].firstIndex(of: UInt8(ascii: "\n")) else {
            scanned = view.count
            // `+ 1`: the last byte may be the `\r` of a `\r\n` whose `\n` has not arrived yet.
            if view.count > maxLineBytes + 1 {
                tooLong(context: context, buffer: &buffer)
            }
            return .needMoreData
        }
        scanned = 0
        let length = newline - view.startIndex
        var line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytes > 0, line.getInteger(at: line.writerIndex - 1, as: UInt8.self) == UInt8(ascii: "\r") {
            line.moveWriterIndex(to: line.writerIndex - 1)
        }
        if line.readableBytes > maxLineBytes {
            tooLong(context: context, buffer: &buffer)
            return .needMoreData
        }
        context.fireChannelRead(wrapInboundOut(.line(line)))
        return .continue
    }

    private mutating func tooLong(context: ChannelHandlerContext, buffer: inout ByteBuffer) {
        discarding = true
        buffer.moveReaderIndex(to: buffer.writerIndex)
        context.fireChannelRead(wrapInboundOut(.tooLong))
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // An unterminated fragment at EOF is not a request: drop it.
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}
