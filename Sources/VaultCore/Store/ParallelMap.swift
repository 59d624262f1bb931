import Dispatch

/// `(0..<count).map(transform)` spread over all cores, in chunks, keeping the order. For CPU-bound
/// work at start-up (opening and decoding every record of a large store).
func parallelMap<T>(_ count: Int, _ transform: (Int) -> T) -> [T] {
    guard count > 1024 else { return (0..<count).map(transform) }
    let chunks = min(count, 64)
    let results = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
    defer { results.deallocate() }
    // Each chunk writes only its own slice of `results`, and concurrentPerform returns after all
    // chunks finished: no two threads touch one element, nothing is read before it is written.
    nonisolated(unsafe) let output = results
    withoutActuallyEscaping(transform) { transform in
        nonisolated(unsafe) let work = transform
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let lower = count * chunk / chunks
            let upper = count * (chunk + 1) / chunks
            for index in lower..<upper { (output.baseAddress! + index).initialize(to: work(index)) }
        }
    }
    let array = Array(results)
    _ = results.baseAddress.map { $0.deinitialize(count: count) }
    return array
}
