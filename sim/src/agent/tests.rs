use std::time::Duration;

use tokio::time::Instant;

use super::round_due;

#[test]
fn a_lingering_agent_sleeps_until_its_lingering_ends_not_its_past_leave() {
    let now = Instant::now();
    let left = now - Duration::from_millis(10);
    let linger_end = now + Duration::from_millis(500);
    let idle = now + Duration::from_secs(60);
    assert_eq!(round_due(idle, Some(left), Some(linger_end)), linger_end);
    // Its own earlier timers (answers still owed) still count.
    let answer = now + Duration::from_millis(5);
    assert_eq!(round_due(answer, Some(left), Some(linger_end)), answer);
}

#[test]
fn before_leaving_the_leave_instant_is_a_timer() {
    let now = Instant::now();
    let leave = now + Duration::from_secs(1);
    assert_eq!(
        round_due(now + Duration::from_secs(60), Some(leave), None),
        leave
    );
    let send = now + Duration::from_millis(20);
    assert_eq!(round_due(send, Some(leave), None), send);
}
