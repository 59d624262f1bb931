import NIOCore
import NIOEmbedded
import Testing
@testable import VaultServer

@Suite("Line framing")
struct LineFrameDecoderTests {
    private func channel(limit: Int) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maxLineBytes: limit)))
        return channel
    }

    private func frames(_ channel: EmbeddedChannel) throws -> [String] {
        var out: [String] = []
        while let frame = try channel.readInbound(as: LineFrame.self) {
            switch frame {
            case .line(let buffer): out.append(String(buffer: buffer))
            case .tooLong: out.append("<too long>")
            }
        }
        return out
    }

    @Test("splits at \\n, strips a \\r before it, and reassembles lines split across reads")
    func splits() throws {
        let channel = try channel(limit: 100)
        try channel.writeInbound(ByteBuffer(string: "one\ntwo\r\nthr"))
        try channel.writeInbound(ByteBuffer(string: "ee\n\nfour"))
        #expect(try frames(channel) == ["one", "two", "three", ""])
        try channel.writeInbound(ByteBuffer(string: "\n"))
        #expect(try frames(channel) == ["four"])
    }

    @Test("a line of exactly the limit passes; one byte more is too long and the rest is discarded")
    func limit() throws {
        let exact = try channel(limit: 10)
        try exact.writeInbound(ByteBuffer(string: String(repeating: "a", count: 10) + "\r\n"))
        #expect(try frames(exact) == [String(repeating: "a", count: 10)])

        let over = try channel(limit: 10)
        try over.writeInbound(ByteBuffer(string: String(repeating: "a", count: 11) + "\nnext\n"))
        #expect(try frames(over) == ["<too long>"])
    }

    @Test("an unterminated line is refused as soon as it passes the limit, without buffering the rest")
    func unterminated() throws {
        let channel = try channel(limit: 16)
        try channel.writeInbound(ByteBuffer(string: String(repeating: "b", count: 17)))
        #expect(try frames(channel) == [])  // 17 bytes may still be 16 + "\r"
        try channel.writeInbound(ByteBuffer(string: "bb"))
        #expect(try frames(channel) == ["<too long>"])
        for _ in 0..<100 { try channel.writeInbound(ByteBuffer(string: String(repeating: "c", count: 1000))) }
        #expect(try frames(channel) == [])
    }
}
