-- Each user's home-screen cards for their service stage (seed ui_layout_rules), in two orders: the rules'
-- (rule_position) and the personalized one (personalized_position: pinned cards keep their rule
-- position, the other cards fill the remaining positions by what users of the same role and region click,
-- int_home_card_ctr, ties by rule rank). orchestration/recommendations/layouts.py picks one per user by
-- the `ui-personalized-layout` flag and publishes ui_layouts.

with

cards as (

    select
        stages.user_id,
        stages.role,
        stages.region,
        stages.service_stage,
        stages.as_of,
        rules.card_id,
        rules.rule_rank,
        rules.pinned,
        ctr.ctr_smoothed
    from {{ ref('int_user_service_stage') }} as stages
    inner join {{ ref('ui_layout_rules') }} as rules
        on rules.role = stages.role and rules.service_stage = stages.service_stage
    left join {{ ref('int_home_card_ctr') }} as ctr
        on ctr.role = stages.role and ctr.region = stages.region and ctr.card_id = rules.card_id

),

free_slots as (

    -- the rule positions not held by a pinned card, in order
    select user_id, rule_rank as position, row_number() over (partition by user_id order by rule_rank) as slot
    from cards
    where not pinned

),

ranked_free as (

    select user_id, card_id,
           row_number() over (partition by user_id order by ctr_smoothed desc nulls last, rule_rank) as slot
    from cards
    where not pinned

)

select
    cards.*,
    cards.rule_rank as rule_position,
    coalesce(free_slots.position, cards.rule_rank) as personalized_position
from cards
left join ranked_free on ranked_free.user_id = cards.user_id and ranked_free.card_id = cards.card_id
left join free_slots on free_slots.user_id = ranked_free.user_id and free_slots.slot = ranked_free.slot
