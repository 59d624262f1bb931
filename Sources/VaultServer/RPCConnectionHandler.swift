import Logging
import NIOCore
import VaultCore
import VaultProtocol

/// Settings that shape every connection.
struct ConnectionSettings: Sendable {
    var maxLineBytes: Int
    var idleTimeout: TimeAmount
    var maxPipelinedRequests: Int = Limits.maxPipelinedRequests
}

/// The JSON-RPC side of one connection: parses lines, runs requests (possibly many at once), and
/// writes the answers in request order.
///
/// Every request gets a numbered slot when its line arrives; answers are written only from the head
/// of the slot queue, so a slow `vault.store` (waiting for its fsync) holds back the answers of
/// requests sent after it, never reorders them. Notifications get no slot. With
/// `maxPipelinedRequests` slots open the handler stops reading until answers drain.
///
/// Requests on one connection take effect in the order they were sent: a write (`vault.store`,
/// `vault.delete`, `grants.revoke`) starts at once, so pipelined writes share fsyncs, but any other
/// request waits until the writes sent before it are durable, and writes sent after a waiting
/// request wait behind it. A client therefore always reads its own writes. (Elements of one batch
/// run concurrently, as JSON-RPC allows.)
///
/// A connection is idle when no request is in flight and no complete line arrived and no answer
/// was written for `idleTimeout`; bytes of an unfinished line do not count, so a client trickling
/// one byte a second is closed like a silent one.
final class RPCConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = LineFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct Slot {
        /// For a batch: the answers of its elements (nil for notifications), filled as they finish.
        var batch: [JSONValue?]?
        var remaining: Int
        var response: JSONValue?
        var done = false
    }

    private let service: VaultService
    private let peer: Peer
    private let logger: Logger
    private let settings: ConnectionSettings
    private let requestIds: RequestIdGenerator

    private var context: ChannelHandlerContext!
    private var slots: [UInt64: Slot] = [:]
    private var headSlot: UInt64 = 0
    private var nextSlot: UInt64 = 0
    private var readPaused = false
    private var closing = false
    private var lastActivity = NIODeadline.now()
    private var idleCheck: RepeatedTask?
    /// Requests waiting for earlier writes of this connection, in arrival order.
    private var deferred = CircularBuffer<Unit>()
    private var writesInFlight = 0

    /// One line's worth of work: a single request or a batch (each element's envelope checked once),
    /// with where its answer goes.
    private struct Unit {
        var elements: [Result<RPCRequest, RPCFailure>]
        var slot: UInt64?
        var writes: Int

        init(elements: [Result<RPCRequest, RPCFailure>], slot: UInt64?) {
            self.elements = elements
            self.slot = slot
            self.writes = elements.filter(RPCConnectionHandler.isWrite).count
        }

        var writesOnly: Bool { writes == elements.count }
    }

    /// Only these names reach the log: an unknown "method" is client input and could be anything.
    private static let knownMethods: Set<String> = RPCMethod.management.union([RPCMethod.exchange, RPCMethod.health, RPCMethod.metrics])
    private static let writeMethods: Set<String> = [RPCMethod.store, RPCMethod.delete, RPCMethod.revoke]

    /// A valid request for a write method; an invalid envelope is answered at once and writes nothing.
    private static func isWrite(_ element: Result<RPCRequest, RPCFailure>) -> Bool {
        if case .success(let request) = element { return writeMethods.contains(request.method) }
        return false
    }

    init(service: VaultService, peer: Peer, logger: Logger, settings: ConnectionSettings, requestIds: RequestIdGenerator) {
        self.service = service
        self.peer = peer
        self.logger = logger
        self.settings = settings
        self.requestIds = requestIds
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let interval = TimeAmount.nanoseconds(max(min(settings.idleTimeout.nanoseconds / 4, 1_000_000_000), 20_000_000))
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            bound.value.checkIdle()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.debug("closing connection after an error", metadata: ["peer": .string(peer.description), "error": .string("\(error)")])
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if slots.count >= settings.maxPipelinedRequests {
            readPaused = true
        } else {
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        lastActivity = .now()
        switch unwrapInboundIn(data) {
        case .tooLong:
            closing = true
            let slot = openSlot(batchSize: nil)
            let error = VaultError(.payloadTooLarge, "Request line is longer than the limit of \(settings.maxLineBytes) bytes")
            let requestId = requestIds.next()
            logOutcome(method: nil, requestId: requestId, error: error, startedAt: .now())
            finish(slot: slot, element: nil, response: RPCResponse.failure(id: .null, error: error, requestId: requestId))
        case .line(let buffer):
            handleLine(buffer)
        }
    }

    // MARK: - Requests

    private func handleLine(_ buffer: ByteBuffer) {
        let view = buffer.readableBytesView
        if view.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }  // blank lines are ignored
        let parsed: Result<JSONValue, JSONParseError> = view.withContiguousStorageIfAvailable { bytes in
            Result { () throws(JSONParseError) in try JSONParser.parse(bytes, maximumDepth: Limits.maxJSONDepth) }
        } ?? Result { () throws(JSONParseError) in try JSONParser.parse(Array(view), maximumDepth: Limits.maxJSONDepth) }
        switch parsed {
        case .failure(let parseError):
            let slot = openSlot(batchSize: nil)
            let error = VaultError(.parseError, "Parse error: \(parseError.reason) at byte \(parseError.offset)")
            let requestId = requestIds.next()
            logOutcome(method: nil, requestId: requestId, error: error, startedAt: .now())
            finish(slot: slot, element: nil, response: RPCResponse.failure(id: .null, error: error, requestId: requestId))
        case .success(.array(let elements)):
            guard !elements.isEmpty, elements.count <= Limits.maxBatchElements else {
                let slot = openSlot(batchSize: nil)
                let message = elements.isEmpty ? "Empty batch" : "Batch has more than \(Limits.maxBatchElements) requests"
                let error = VaultError(.invalidRequest, message)
                let requestId = requestIds.next()
                logOutcome(method: nil, requestId: requestId, error: error, startedAt: .now())
                finish(slot: slot, element: nil, response: RPCResponse.failure(id: .null, error: error, requestId: requestId))
                return
            }
            schedule(Unit(elements: elements.map(RPCRequest.parse), slot: openSlot(batchSize: elements.count)))
        case .success(let value):
            let element = RPCRequest.parse(value)
            // A valid request without an id is a notification: no slot, no answer. An invalid one
            // is answered (with id null), as JSON-RPC requires.
            let isNotification = (try? element.get())?.isNotification == true
            schedule(Unit(elements: [element], slot: isNotification ? nil : openSlot(batchSize: nil)))
        }
    }

    private func schedule(_ unit: Unit) {
        if deferred.isEmpty, writesInFlight == 0 || unit.writesOnly {
            start(unit)
        } else {
            deferred.append(unit)
        }
    }

    private func start(_ unit: Unit) {
        writesInFlight += unit.writes
        let batch = unit.elements.count > 1 || unit.slot.map { slots[$0]?.batch != nil } == true
        for (position, element) in unit.elements.enumerated() {
            run(element, slot: unit.slot, element: batch ? position : nil)
        }
    }

    private func writeFinished() {
        writesInFlight -= 1
        while let next = deferred.first, writesInFlight == 0 || next.writesOnly {
            deferred.removeFirst()
            start(next)
        }
    }

    /// Runs one request; its answer (nil for a notification) goes to `slot`/`element`.
    private func run(_ parsed: Result<RPCRequest, RPCFailure>, slot: UInt64?, element: Int?) {
        let requestId = requestIds.next()
        let startedAt = NIODeadline.now()
        let request: RPCRequest
        switch parsed {
        case .failure(let failure):
            logOutcome(method: nil, requestId: requestId, error: failure.error, startedAt: startedAt)
            if let slot {
                finish(slot: slot, element: element, response: RPCResponse.failure(id: failure.id, error: failure.error, requestId: requestId))
            }
            return
        case .success(let valid):
            request = valid
        }
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let method = request.method
        let id = request.id
        let countsAsWrite = Self.writeMethods.contains(method)
        service.handle(request, context: RequestContext(requestId: requestId, peer: peer)) { result in
            let deliver: @Sendable () -> Void = {
                let handler = bound.value
                defer { if countsAsWrite { handler.writeFinished() } }
                switch result {
                case .success(let value):
                    handler.logOutcome(method: method, requestId: requestId, error: nil, startedAt: startedAt)
                    if let slot, let id { handler.finish(slot: slot, element: element, response: RPCResponse.success(id: id, result: value)) }
                    else if let slot { handler.finish(slot: slot, element: element, response: nil) }
                case .failure(let error):
                    handler.logOutcome(method: method, requestId: requestId, error: error, startedAt: startedAt)
                    if let slot, let id {
                        handler.finish(slot: slot, element: element, response: RPCResponse.failure(id: id, error: error, requestId: requestId))
                    } else if let slot {
                        handler.finish(slot: slot, element: element, response: nil)
                    }
                }
            }
            if loop.inEventLoop { deliver() } else { loop.execute(deliver) }
        }
    }

    // MARK: - Ordered answers

    private func openSlot(batchSize: Int?) -> UInt64 {
        let number = nextSlot
        nextSlot += 1
        slots[number] = Slot(batch: batchSize.map { [JSONValue?](repeating: nil, count: $0) }, remaining: batchSize ?? 1)
        return number
    }

    private func finish(slot number: UInt64, element: Int?, response: JSONValue?) {
        guard var slot = slots[number] else { return }
        if let element, slot.batch != nil {
            slot.batch![element] = response
        } else {
            slot.response = response
        }
        slot.remaining -= 1
        if slot.remaining == 0 {
            slot.done = true
            if let batch = slot.batch {
                let answers = batch.compactMap { $0 }
                slot.response = answers.isEmpty ? nil : .array(answers)  // a batch of notifications gets no answer
            }
        }
        slots[number] = slot
        drain()
    }

    private func drain() {
        var wrote = false
        while let slot = slots[headSlot], slot.done {
            slots[headSlot] = nil
            headSlot += 1
            guard let response = slot.response else { continue }
            var bytes = response.jsonBytes
            bytes.append(UInt8(ascii: "\n"))
            let buffer = context.channel.allocator.buffer(bytes: bytes)
            if closing, slots.isEmpty {
                // The last answer before closing: close once it is written, not before.
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
                lastActivity = .now()
                return
            }
            context.write(wrapOutboundOut(buffer), promise: nil)
            wrote = true
        }
        if wrote {
            lastActivity = .now()
            context.flush()
        } else if closing, slots.isEmpty {
            context.close(promise: nil)
        }
        if readPaused, slots.count < settings.maxPipelinedRequests {
            readPaused = false
            context.read()
        }
    }

    private func checkIdle() {
        guard slots.isEmpty, !closing else { return }
        if NIODeadline.now() - lastActivity >= settings.idleTimeout {
            logger.debug("closing idle connection", metadata: ["peer": .string(peer.description)])
            closing = true
            context.close(promise: nil)
        }
    }

    // MARK: - Logging

    /// One line per request: never params or results (they hold secrets), only what identifies it.
    private func logOutcome(method: String?, requestId: String, error: VaultError?, startedAt: NIODeadline) {
        // Successes are logged at debug: skip building the line entirely when that is off.
        if error == nil, logger.logLevel > .debug { return }
        let micros = (NIODeadline.now() - startedAt).nanoseconds / 1000
        var metadata: Logger.Metadata = [
            "requestId": .string(requestId), "method": .string(method.map { Self.knownMethods.contains($0) ? $0 : "<unknown>" } ?? "-"),
            "uid": .stringConvertible(peer.uid), "pid": .stringConvertible(peer.pid), "micros": .stringConvertible(micros),
        ]
        if let error {
            metadata["code"] = .string(error.code.name)
            if let reason = error.reason { metadata["reason"] = .string(reason) }
            let level: Logger.Level = error.code == .internalError ? .error : .info
            logger.log(level: level, "request failed", metadata: metadata)
        } else {
            logger.debug("request done", metadata: metadata)
        }
    }
}
